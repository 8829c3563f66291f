package auth

import (
	"errors"
	"strings"
)

// oauthInitial is an OAUTHBEARER client initial response (RFC 7628, section 3.1).
type oauthInitial struct {
	authzID string
	token   string
	exts    map[string]string
}

var errOAuthSyntax = errors.New("malformed OAUTHBEARER message")

// parseOAuthInitial reads:
//
//	gs2-header = ("n" / "y") "," ["a=" saslname] ","
//	message    = gs2-header %x01 *(key "=" value %x01) %x01
//
// where key is 1*ALPHA, value is *(VCHAR / SP / HTAB / CR / LF), and "auth" (required) is
// "Bearer" 1*SP token, the token RFC 6750's b64token.
func parseOAuthInitial(msg string) (oauthInitial, error) {
	var m oauthInitial
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok || (flag != "n" && flag != "y") {
		return m, errors.New("OAUTHBEARER: channel binding is not supported (want a GS2 flag of n or y)")
	}
	authz, rest, ok := strings.Cut(rest, ",")
	if !ok {
		return m, errOAuthSyntax
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if m.authzID, ok = decodeSaslName(v, ok); !ok {
			return m, errOAuthSyntax
		}
	}
	body, ok := strings.CutPrefix(rest, "\x01")
	if !ok || !strings.HasSuffix(body, "\x01\x01") {
		return m, errOAuthSyntax
	}
	kvs, err := parseOAuthPairs(body[:len(body)-2])
	if err != nil {
		return m, err
	}
	if m.token, err = bearerToken(kvs["auth"]); err != nil {
		return m, err
	}
	delete(kvs, "auth")
	m.exts = kvs
	return m, nil
}

// parseOAuthPairs reads key=value pairs separated by %x01 (the last one's separator is cut off).
func parseOAuthPairs(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || !alpha(k) || !oauthValue(v) {
			return nil, errOAuthSyntax
		}
		if _, dup := out[k]; dup {
			return nil, errOAuthSyntax
		}
		out[k] = v
	}
	return out, nil
}

func oauthValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x21 || c > 0x7e) && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// bearerToken reads "Bearer" 1*SP b64token; the scheme's case does not matter (RFC 7235).
func bearerToken(auth string) (string, error) {
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New("OAUTHBEARER: want auth=Bearer <token>")
	}
	tok = strings.TrimLeft(tok, " ")
	body := strings.TrimRight(tok, "=")
	if body == "" {
		return "", errOAuthSyntax
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return "", errOAuthSyntax
		}
	}
	return tok, nil
}

var errAuthzMismatch = errors.New("authorization id differs from the token's principal")
