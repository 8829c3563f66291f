package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"
)

// DefaultOAuthClockSkew is the leeway on exp and nbf: Kafka's sasl.oauthbearer.clock.skew.seconds.
const DefaultOAuthClockSkew = 30 * time.Second

// oauthAlgorithms are the JWT algorithms accepted: asymmetric ones only, so that a public key can
// never be used as an HMAC secret and "none" never passes.
var oauthAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// OAuthConfig configures the validation of OAUTHBEARER tokens (JWTs).
type OAuthConfig struct {
	// KeyFiles are PEM files of public keys or certificates that may sign tokens.
	KeyFiles []string
	// JWKSFile is a JSON Web Key Set file of such keys, re-read when it changes.
	JWKSFile string
	// Issuer, when set, is the iss every token must carry.
	Issuer string
	// Audience, when set, lists the values of which a token's aud must hold one.
	Audience []string
	// PrincipalClaim names the claim that becomes the user name; default "sub".
	PrincipalClaim string
	// ClockSkew is the leeway on exp and nbf; default DefaultOAuthClockSkew.
	ClockSkew time.Duration
	// AllowUnsecured accepts unsigned tokens (alg "none"), as Kafka's default OAUTHBEARER validator
	// (OAuthBearerUnsecuredValidatorCallbackHandler) does: for development and client test suites
	// only, since anyone can then log in as anyone. Signed tokens are still checked against the keys.
	AllowUnsecured bool
	Now            func() time.Time // default time.Now
	Logger         hclog.Logger
}

// OAuthValidator checks bearer tokens against the configured keys.
type OAuthValidator struct {
	cfg   OAuthConfig
	pem   []any
	jwks  *watched[*keySet]
	parse *jwt.Parser
	// unsecured parses alg "none" tokens when AllowUnsecured; nil otherwise.
	unsecured *jwt.Parser
}

// NewOAuthValidator reads the keys; at least one must be usable.
func NewOAuthValidator(cfg OAuthConfig) (*OAuthValidator, error) {
	if cfg.PrincipalClaim == "" {
		cfg.PrincipalClaim = "sub"
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = DefaultOAuthClockSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	v := &OAuthValidator{cfg: cfg}
	for _, f := range cfg.KeyFiles {
		keys, err := readPEMKeys(f)
		if err != nil {
			return nil, err
		}
		v.pem = append(v.pem, keys...)
	}
	if cfg.JWKSFile != "" {
		log := cfg.Logger.Named("oauth")
		w, err := newWatched(func() (*keySet, error) { return readJWKS(cfg.JWKSFile) }, func(err error) {
			if err != nil {
				log.Warn("JWKS file not reloaded; keeping the keys read before", "file", cfg.JWKSFile, "error", err)
			} else {
				log.Info("JWKS file reloaded", "file", cfg.JWKSFile)
			}
		}, cfg.Now, cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		v.jwks = w
	}
	if len(v.pem) == 0 && v.jwks == nil && !cfg.AllowUnsecured {
		return nil, fmt.Errorf("auth: OAUTHBEARER: %w: give key files or a JWKS file", errNoKeys)
	}
	opts := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithLeeway(cfg.ClockSkew), jwt.WithTimeFunc(cfg.Now)}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audience...))
	}
	v.parse = jwt.NewParser(append(opts, jwt.WithValidMethods(oauthAlgorithms))...)
	if cfg.AllowUnsecured {
		cfg.Logger.Named("oauth").Warn("OAUTHBEARER accepts unsigned tokens: anyone can log in as anyone (development only)")
		v.unsecured = jwt.NewParser(append(opts, jwt.WithValidMethods([]string{"none"}))...)
	}
	return v, nil
}

// unsignedToken tells whether a token's header says alg "none".
func unsignedToken(token string) bool {
	var claims jwt.MapClaims
	t, _, err := jwt.NewParser().ParseUnverified(token, &claims)
	return err == nil && t.Method == jwt.SigningMethodNone
}

// Validate checks a token and returns its principal's name and expiry.
func (v *OAuthValidator) Validate(token string) (string, time.Time, error) {
	claims := jwt.MapClaims{}
	if v.unsecured != nil && unsignedToken(token) {
		if _, err := v.unsecured.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
			return jwt.UnsafeAllowNoneSignatureType, nil
		}); err != nil {
			return "", time.Time{}, err
		}
	} else if _, err := v.parse.ParseWithClaims(token, claims, v.keyFor); err != nil {
		return "", time.Time{}, err
	}
	name, _ := claims[v.cfg.PrincipalClaim].(string)
	if name == "" {
		return "", time.Time{}, fmt.Errorf("token has no string claim %q", v.cfg.PrincipalClaim)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return "", time.Time{}, errors.New("token has no exp")
	}
	return name, exp.Time, nil
}

// keyFor picks the verification keys of a token: the JWKS key named by its kid, or every key.
func (v *OAuthValidator) keyFor(t *jwt.Token) (any, error) {
	keys := slices.Clone(v.pem)
	if v.jwks != nil {
		ks := v.jwks.get()
		if kid, _ := t.Header["kid"].(string); kid != "" {
			if k, ok := ks.byKID[kid]; ok {
				return k, nil
			}
		}
		keys = append(keys, ks.all...)
	}
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}
