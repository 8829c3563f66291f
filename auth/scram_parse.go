package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf8"
)

// The SCRAM messages a client sends (RFC 5802, section 7) are parsed here, strictly, before
// xdg-go/scram sees them: v1.1.2 indexes into fields it has not checked (an empty GS2 flag and a
// proof longer than the hash both panic), and a decoder of network input must not.

// scramFirst is a client-first-message.
type scramFirst struct {
	authzID string // decoded saslname; empty when absent
	user    string // decoded saslname
	nonce   string
	exts    map[string]string
}

var errSCRAMSyntax = errors.New("malformed SCRAM message")

// parseClientFirst reads gs2-header client-first-message-bare:
//
//	("n" / "y") "," ["a=" saslname] "," ["m=" ... ","] "n=" saslname "," "r=" nonce *("," attr "=" value)
func parseClientFirst(msg string) (scramFirst, error) {
	var f scramFirst
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok || (flag != "n" && flag != "y") {
		return f, errors.New("SCRAM: channel binding is not supported (want a GS2 flag of n or y)")
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return f, errSCRAMSyntax
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if f.authzID, ok = decodeSaslName(v, ok); !ok {
			return f, errSCRAMSyntax
		}
	}
	fields := strings.Split(bare, ",")
	if len(fields) < 2 || strings.HasPrefix(fields[0], "m=") {
		return f, errors.New("SCRAM: mandatory extensions are not supported")
	}
	v, ok := strings.CutPrefix(fields[0], "n=")
	if f.user, ok = decodeSaslName(v, ok); !ok {
		return f, errSCRAMSyntax
	}
	if f.nonce, ok = strings.CutPrefix(fields[1], "r="); !ok || !printable(f.nonce) {
		return f, errSCRAMSyntax
	}
	exts, err := parseAttrs(fields[2:])
	f.exts = exts
	return f, err
}

// parseAttrs reads extensions: attr "=" value, attr one letter (RFC 5802) or a word (Kafka's
// tokenauth), value without commas.
func parseAttrs(fields []string) (map[string]string, error) {
	out := map[string]string{}
	for _, fld := range fields {
		k, v, ok := strings.Cut(fld, "=")
		if !ok || k == "" || !alpha(k) || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return nil, errSCRAMSyntax
		}
		if _, dup := out[k]; dup {
			return nil, errSCRAMSyntax
		}
		out[k] = v
	}
	return out, nil
}

// parseClientFinal checks client-final-message: "c=" base64 "," "r=" nonce *("," ext) "," "p="
// base64, the proof exactly proofLen bytes.
func parseClientFinal(msg string, proofLen int) error {
	fields := strings.Split(msg, ",")
	if len(fields) < 3 {
		return errSCRAMSyntax
	}
	cb, ok := strings.CutPrefix(fields[0], "c=")
	if _, err := base64.StdEncoding.DecodeString(cb); !ok || err != nil {
		return errSCRAMSyntax
	}
	if n, ok := strings.CutPrefix(fields[1], "r="); !ok || !printable(n) {
		return errSCRAMSyntax
	}
	if _, err := parseAttrs(fields[2 : len(fields)-1]); err != nil {
		return err
	}
	p, ok := strings.CutPrefix(fields[len(fields)-1], "p=")
	proof, err := base64.StdEncoding.DecodeString(p)
	if !ok || err != nil || len(proof) != proofLen {
		return errSCRAMSyntax
	}
	return nil
}

// decodeSaslName unescapes a saslname: UTF-8 without NUL, "," or "=" except in "=2C" and "=3D".
// ok carries the caller's prefix check through.
func decodeSaslName(s string, ok bool) (string, bool) {
	if !ok || s == "" || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '=':
			b.WriteByte(s[i])
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// printable is RFC 5802's printable: %x21-2B / %x2D-7E, at least one.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return s != ""
}

func alpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
