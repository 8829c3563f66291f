package auth

import (
	"fmt"
	"net/netip"
	"strings"
)

// PrincipalTypeUser is the only principal type StreamHouse makes: Kafka's default.
const PrincipalTypeUser = "User"

// Principal is who a connection authenticated as, in Kafka's "Type:Name" form.
type Principal struct {
	Type string
	Name string
}

// User is the principal of a user name.
func User(name string) Principal { return Principal{Type: PrincipalTypeUser, Name: name} }

// Anonymous is the principal of a connection that did not authenticate (Kafka's User:ANONYMOUS).
var Anonymous = User("ANONYMOUS")

// WildcardPrincipal in an ACL binding matches every user (Kafka's User:*).
var WildcardPrincipal = User("*")

func (p Principal) String() string { return p.Type + ":" + p.Name }

// ParsePrincipal reads "Type:Name"; the name may hold colons, the type may not be empty.
func ParsePrincipal(s string) (Principal, error) {
	typ, name, ok := strings.Cut(s, ":")
	if !ok || typ == "" || name == "" {
		return Principal{}, fmt.Errorf("principal %q: want Type:Name, such as User:alice", s)
	}
	return Principal{Type: typ, Name: name}, nil
}

// WildcardHost in an ACL binding matches every client address.
const WildcardHost = "*"

// canonicalHost is an ACL host as compared: "*" or an IP address in its canonical form (an
// IPv4-mapped IPv6 address as IPv4), so that ::ffff:10.0.0.1 and 10.0.0.1 are one host.
func canonicalHost(s string) (string, error) {
	if s == WildcardHost {
		return s, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("host %q: want * or an IP address", s)
	}
	return a.Unmap().String(), nil
}

// hostOf is a client address as ACL hosts are compared with it.
func hostOf(a netip.Addr) string { return a.Unmap().WithZone("").String() }
