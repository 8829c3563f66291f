package auth

import (
	"crypto/tls"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// rfc2253Names are the attribute keywords of Java's X500Principal.getName(RFC2253), Kafka's
// default principal form; any other attribute is written as its OID and its value's DER in hex.
var rfc2253Names = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// rawATV is an attribute of a subject with its value as encoded, so that an unknown attribute is
// written with its own DER, as Java writes it.
type rawATV struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// The names end in SET: encoding/asn1 reads such slices as SET OF.
type (
	rawRDNSET      []rawATV
	rawRDNSequence []rawRDNSET
)

// DistinguishedName writes a certificate subject (its DER) as RFC 2253 does and as Kafka names TLS
// clients: the last RDN first, RDNs joined by "," and multi-valued RDNs by "+", no spaces, special
// characters escaped with a backslash.
func DistinguishedName(rawSubject []byte) (string, error) {
	var seq rawRDNSequence
	if rest, err := asn1.Unmarshal(rawSubject, &seq); err != nil || len(rest) > 0 {
		return "", fmt.Errorf("auth: certificate subject does not parse: %v", err)
	}
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if i < len(seq)-1 {
			b.WriteByte(',')
		}
		for j, atv := range seq[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			writeATV(&b, atv)
		}
	}
	return b.String(), nil
}

func writeATV(b *strings.Builder, atv rawATV) {
	oid := atv.Type.String()
	name, known := rfc2253Names[oid]
	var s string
	if rest, err := asn1.Unmarshal(atv.Value.FullBytes, &s); !known || err != nil || len(rest) > 0 {
		b.WriteString(oid + "=#" + hex.EncodeToString(atv.Value.FullBytes))
		return
	}
	b.WriteString(name + "=")
	for k, c := range s {
		switch {
		case strings.ContainsRune(",+\"\\<>;", c),
			c == ' ' && (k == 0 || k == len(s)-1),
			c == '#' && k == 0:
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
}

// PrincipalRules are Kafka's ssl.principal.mapping.rules: RULE:pattern/replacement/[LU] and
// DEFAULT, applied in order to a client certificate's distinguished name; the first that matches
// the whole name gives the user name. No rules: DEFAULT.
type PrincipalRules struct{ rules []principalRule }

type principalRule struct {
	def     bool
	re      *regexp.Regexp // anchored: the rule applies only when it matches the whole name
	replace *regexp.Regexp
	repl    string
	toCase  byte // 'L', 'U' or 0
}

var (
	ruleRE   = regexp.MustCompile(`^\s*(?:(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?))\s*(?:,|$)`)
	dollarRE = regexp.MustCompile(`\$(\d)`)
)

// ParsePrincipalRules reads a rules string such as
// "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),.*$/$1/L,DEFAULT".
func ParsePrincipalRules(s string) (*PrincipalRules, error) {
	pr := &PrincipalRules{}
	for rest := strings.TrimSpace(s); rest != ""; {
		m := ruleRE.FindStringSubmatch(rest)
		if m == nil {
			return nil, fmt.Errorf("auth: principal mapping rules: cannot read %q", rest)
		}
		rest = strings.TrimSpace(rest[len(m[0]):])
		if m[1] != "" {
			pr.rules = append(pr.rules, principalRule{def: true})
			continue
		}
		full, err1 := regexp.Compile(`^(?:` + m[2] + `)$`)
		re, err2 := regexp.Compile(m[2])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("auth: principal mapping rule %q: %w", m[0], err)
		}
		var c byte
		if m[4] != "" {
			c = m[4][0]
		}
		// Java writes $1 where Go's expansion needs ${1} to end the group number.
		pr.rules = append(pr.rules, principalRule{re: full, replace: re, repl: dollarRE.ReplaceAllString(m[3], `$${$1}`), toCase: c})
	}
	return pr, nil
}

// Map gives the user name of a distinguished name; no rule matching is an error, as in Kafka.
func (pr *PrincipalRules) Map(dn string) (string, error) {
	if pr == nil || len(pr.rules) == 0 {
		return dn, nil
	}
	for _, r := range pr.rules {
		if r.def {
			return dn, nil
		}
		if !r.re.MatchString(dn) {
			continue
		}
		out := r.replace.ReplaceAllString(dn, r.repl)
		switch r.toCase {
		case 'L':
			out = strings.ToLower(out)
		case 'U':
			out = strings.ToUpper(out)
		}
		return out, nil
	}
	return "", fmt.Errorf("%w: no principal mapping rule applies to %q", ErrAuthenticationFailed, dn)
}

// TLSPrincipal is the principal of a TLS connection: User:<the client certificate's name, mapped
// by rules>, or User:ANONYMOUS without a client certificate, as in Kafka.
func TLSPrincipal(cs tls.ConnectionState, rules *PrincipalRules) (Principal, error) {
	if len(cs.PeerCertificates) == 0 {
		return Anonymous, nil
	}
	dn, err := DistinguishedName(cs.PeerCertificates[0].RawSubject)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrAuthenticationFailed, err)
	}
	name, err := rules.Map(dn)
	if err != nil {
		return Principal{}, err
	}
	return User(name), nil
}
