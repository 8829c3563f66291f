package auth

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/coord"
)

// fakeACLs is an ACLSource whose generation moves with every set.
type fakeACLs struct {
	gen      atomic.Uint64
	bindings atomic.Pointer[[]coord.ACLBinding]
}

func (f *fakeACLs) SecurityGeneration() uint64 { return f.gen.Load() }
func (f *fakeACLs) ACLs() []coord.ACLBinding   { return *f.bindings.Load() }

func (f *fakeACLs) set(acls ...ACL) {
	bs := make([]coord.ACLBinding, len(acls))
	for i, a := range acls {
		bs[i] = a.Binding()
	}
	f.bindings.Store(&bs)
	f.gen.Add(1)
}

func newAuthorizer(t *testing.T, cfg AuthorizerConfig, acls ...ACL) (*Authorizer, *fakeACLs) {
	t.Helper()
	src := &fakeACLs{}
	src.set(acls...)
	a, err := NewAuthorizer(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, src
}

// acl builds a binding from Kafka-CLI-like words: "User:alice * READ ALLOW TOPIC LITERAL orders".
func acl(t testing.TB, s string) ACL {
	t.Helper()
	f := strings.Fields(s)
	p, err := ParsePrincipal(f[0])
	if err != nil {
		t.Fatal(err)
	}
	a := ACL{Principal: p, Host: f[1], Name: f[6]}
	a.Operation, _ = ParseOperation(f[2])
	a.Permission, _ = ParsePermission(f[3])
	a.ResourceType, _ = ParseResourceType(f[4])
	a.PatternType, _ = ParsePatternType(f[5])
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

var (
	hostA = netip.MustParseAddr("10.0.0.1")
	hostB = netip.MustParseAddr("10.0.0.2")
)

func req(p string, host netip.Addr, op Operation, rt ResourceType, name string) Request {
	pr, _ := ParsePrincipal(p)
	return Request{Principal: pr, Host: host, Operation: op, Resource: rt, Name: name}
}

func TestAuthorizeKafkaSemantics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		acls  []string
		cfg   AuthorizerConfig
		req   Request
		allow bool
	}{
		{"no acl, closed by default", nil, AuthorizerConfig{}, req("User:a", hostA, OpRead, ResourceTopic, "t"), false},
		{"no acl, allow everyone", nil, AuthorizerConfig{AllowEveryoneIfNoACLFound: true}, req("User:a", hostA, OpRead, ResourceTopic, "t"), true},
		{"allow everyone does not open a resource with acls of others", []string{"User:b * READ ALLOW TOPIC LITERAL t"},
			AuthorizerConfig{AllowEveryoneIfNoACLFound: true}, req("User:a", hostA, OpRead, ResourceTopic, "t"), false},
		{"super user", []string{"User:root * ALL DENY TOPIC LITERAL t"}, AuthorizerConfig{SuperUsers: []Principal{User("root")}},
			req("User:root", hostA, OpDelete, ResourceTopic, "t"), true},
		{"literal allow", []string{"User:a * READ ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpRead, ResourceTopic, "t"), true},
		{"literal is not a prefix", []string{"User:a * READ ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpRead, ResourceTopic, "t2"), false},
		{"other principal", []string{"User:a * READ ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:b", hostA, OpRead, ResourceTopic, "t"), false},
		{"wildcard principal", []string{"User:* * READ ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:b", hostA, OpRead, ResourceTopic, "t"), true},
		{"wildcard resource", []string{"User:a * WRITE ALLOW TOPIC LITERAL *"}, AuthorizerConfig{}, req("User:a", hostA, OpWrite, ResourceTopic, "any"), true},
		{"prefixed", []string{"User:a * WRITE ALLOW TOPIC PREFIXED orders-"}, AuthorizerConfig{}, req("User:a", hostA, OpWrite, ResourceTopic, "orders-eu"), true},
		{"prefixed equal to the name", []string{"User:a * WRITE ALLOW TOPIC PREFIXED orders"}, AuthorizerConfig{}, req("User:a", hostA, OpWrite, ResourceTopic, "orders"), true},
		{"prefixed longer than the name", []string{"User:a * WRITE ALLOW TOPIC PREFIXED orders-"}, AuthorizerConfig{}, req("User:a", hostA, OpWrite, ResourceTopic, "orders"), false},
		{"prefixed star is a prefix, not a wildcard", []string{"User:a * WRITE ALLOW TOPIC PREFIXED *"}, AuthorizerConfig{}, req("User:a", hostA, OpWrite, ResourceTopic, "x"), false},
		{"other resource type", []string{"User:a * READ ALLOW GROUP LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpRead, ResourceTopic, "t"), false},
		{"deny overrides allow", []string{"User:a * READ ALLOW TOPIC PREFIXED t", "User:a * READ DENY TOPIC LITERAL t1"}, AuthorizerConfig{},
			req("User:a", hostA, OpRead, ResourceTopic, "t1"), false},
		{"wildcard deny overrides literal allow", []string{"User:a * READ ALLOW TOPIC LITERAL t1", "User:* * ALL DENY TOPIC LITERAL *"}, AuthorizerConfig{},
			req("User:a", hostA, OpRead, ResourceTopic, "t1"), false},
		{"deny of another operation", []string{"User:a * READ ALLOW TOPIC LITERAL t", "User:a * WRITE DENY TOPIC LITERAL t"}, AuthorizerConfig{},
			req("User:a", hostA, OpRead, ResourceTopic, "t"), true},
		{"deny of Read does not deny Describe", []string{"User:a * DESCRIBE ALLOW TOPIC LITERAL t", "User:a * READ DENY TOPIC LITERAL t"}, AuthorizerConfig{},
			req("User:a", hostA, OpDescribe, ResourceTopic, "t"), true},
		{"host match", []string{"User:a 10.0.0.1 READ ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpRead, ResourceTopic, "t"), true},
		{"host mismatch", []string{"User:a 10.0.0.1 READ ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostB, OpRead, ResourceTopic, "t"), false},
		{"mapped IPv4 host", []string{"User:a ::ffff:10.0.0.1 READ ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpRead, ResourceTopic, "t"), true},
		{"deny from one host", []string{"User:a * READ ALLOW TOPIC LITERAL t", "User:a 10.0.0.2 READ DENY TOPIC LITERAL t"}, AuthorizerConfig{},
			req("User:a", hostA, OpRead, ResourceTopic, "t"), true},
		{"Describe implied by Write", []string{"User:a * WRITE ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpDescribe, ResourceTopic, "t"), true},
		{"Describe implied by Delete", []string{"User:a * DELETE ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpDescribe, ResourceTopic, "t"), true},
		{"Describe implied by Alter", []string{"User:a * ALTER ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpDescribe, ResourceTopic, "t"), true},
		{"Describe not implied by Create", []string{"User:a * CREATE ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpDescribe, ResourceTopic, "t"), false},
		{"Read not implied by Write", []string{"User:a * WRITE ALLOW TOPIC LITERAL t"}, AuthorizerConfig{}, req("User:a", hostA, OpRead, ResourceTopic, "t"), false},
		{"DescribeConfigs implied by AlterConfigs", []string{"User:a * ALTER_CONFIGS ALLOW TOPIC LITERAL t"}, AuthorizerConfig{},
			req("User:a", hostA, OpDescribeConfigs, ResourceTopic, "t"), true},
		{"All implies everything", []string{"User:a * ALL ALLOW CLUSTER LITERAL kafka-cluster"}, AuthorizerConfig{},
			req("User:a", hostA, OpClusterAction, ResourceCluster, ClusterName), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var acls []ACL
			for _, s := range tc.acls {
				acls = append(acls, acl(t, s))
			}
			a, _ := newAuthorizer(t, tc.cfg, acls...)
			if got := a.Authorize(tc.req); got != tc.allow {
				t.Fatalf("Authorize(%+v) = %v, want %v", tc.req, got, tc.allow)
			}
		})
	}
}

func TestAuthorizerFollowsGeneration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a, src := newAuthorizer(t, AuthorizerConfig{Registerer: reg})
	r := req("User:a", hostA, OpRead, ResourceTopic, "t")
	if a.Authorize(r) {
		t.Fatal("allowed without ACLs")
	}
	src.set(acl(t, "User:a * READ ALLOW TOPIC LITERAL t"))
	if !a.Authorize(r) {
		t.Fatal("not allowed after the ACL arrived")
	}
	a.Authorize(r)
	if n := testutil.ToFloat64(a.metrics.rebuilds); n != 2 {
		t.Fatalf("index built %v times, want 2 (once per generation)", n)
	}
	if n := testutil.ToFloat64(a.metrics.decisions[ResourceTopic][1]); n != 2 {
		t.Fatalf("allowed counted %v, want 2", n)
	}
	src.set()
	if a.Authorize(r) {
		t.Fatal("still allowed after the ACL was removed")
	}
}

func TestAuthorizerDenyOfUnknownOperationDeniesAll(t *testing.T) {
	t.Parallel()
	src := &fakeACLs{}
	bs := []coord.ACLBinding{
		acl(t, "User:a * READ ALLOW TOPIC LITERAL t").Binding(),
		{ResourceType: "TOPIC", PatternType: "LITERAL", Name: "t", Principal: "User:a", Host: "*", Operation: "FUTURE_OP", Permission: "DENY"},
		{ResourceType: "TOPIC", PatternType: "LITERAL", Name: "u", Principal: "User:a", Host: "*", Operation: "FUTURE_OP", Permission: "ALLOW"},
		{ResourceType: "TOPIC", PatternType: "LITERAL", Name: "", Principal: "User:a", Host: "*", Operation: "READ", Permission: "ALLOW"},
	}
	src.bindings.Store(&bs)
	a, err := NewAuthorizer(src, AuthorizerConfig{AllowEveryoneIfNoACLFound: true})
	if err != nil {
		t.Fatal(err)
	}
	if a.Authorize(req("User:a", hostA, OpRead, ResourceTopic, "t")) {
		t.Fatal("a deny of an unknown operation did not deny")
	}
	// The unknown allow is left out: u has no ACL, and allow-everyone applies.
	if !a.Authorize(req("User:b", hostA, OpRead, ResourceTopic, "u")) {
		t.Fatal("an allow of an unknown operation counted as an ACL")
	}
}

func TestAuthorizeByResourceType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		acls  []string
		allow bool
	}{
		{"none", nil, false},
		{"one literal", []string{"User:a * WRITE ALLOW TOPIC LITERAL t"}, true},
		{"literal denied", []string{"User:a * WRITE ALLOW TOPIC LITERAL t", "User:a * WRITE DENY TOPIC LITERAL t"}, false},
		{"literal denied by prefix", []string{"User:a * WRITE ALLOW TOPIC LITERAL tx", "User:a * WRITE DENY TOPIC PREFIXED t"}, false},
		{"prefix not dominated", []string{"User:a * WRITE ALLOW TOPIC PREFIXED tx", "User:a * WRITE DENY TOPIC PREFIXED ty"}, true},
		{"prefix denied by shorter prefix", []string{"User:a * WRITE ALLOW TOPIC PREFIXED tx", "User:a * WRITE DENY TOPIC PREFIXED t"}, false},
		{"prefix not denied by literal", []string{"User:a * WRITE ALLOW TOPIC PREFIXED tx", "User:a * WRITE DENY TOPIC LITERAL tx"}, true},
		{"wildcard allow", []string{"User:a * ALL ALLOW TOPIC LITERAL *", "User:a * WRITE DENY TOPIC LITERAL t"}, true},
		{"wildcard deny", []string{"User:a * WRITE ALLOW TOPIC LITERAL t", "User:* * WRITE DENY TOPIC LITERAL *"}, false},
		{"other operation", []string{"User:a * READ ALLOW TOPIC LITERAL t"}, false},
		{"other host", []string{"User:a 10.0.0.2 WRITE ALLOW TOPIC LITERAL t"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var acls []ACL
			for _, s := range tc.acls {
				acls = append(acls, acl(t, s))
			}
			a, _ := newAuthorizer(t, AuthorizerConfig{}, acls...)
			if got := a.AuthorizeByResourceType(User("a"), hostA, OpWrite, ResourceTopic); got != tc.allow {
				t.Fatalf("got %v, want %v", got, tc.allow)
			}
		})
	}
	a, _ := newAuthorizer(t, AuthorizerConfig{SuperUsers: []Principal{User("root")}})
	if !a.AuthorizeByResourceType(User("root"), hostA, OpWrite, ResourceTopic) {
		t.Fatal("super user refused")
	}
}

// naiveAuthorize is the specification of docs/INTERNALS.md, "Authorization", over a plain list.
func naiveAuthorize(acls []ACL, cfg AuthorizerConfig, r Request) bool {
	for _, s := range cfg.SuperUsers {
		if s == r.Principal {
			return true
		}
	}
	applies := func(a ACL) bool {
		if a.ResourceType != r.Resource {
			return false
		}
		if a.PatternType == PatternPrefixed {
			return strings.HasPrefix(r.Name, a.Name)
		}
		return a.Name == r.Name || a.Name == "*"
	}
	who := func(a ACL) bool {
		return (a.Principal == r.Principal || a.Principal == WildcardPrincipal) && (a.Host == "*" || a.Host == r.Host.String())
	}
	any := false
	for _, a := range acls {
		any = any || applies(a)
	}
	if !any {
		return cfg.AllowEveryoneIfNoACLFound
	}
	for _, a := range acls {
		if applies(a) && who(a) && a.Permission == PermissionDeny && (a.Operation == r.Operation || a.Operation == OpAll) {
			return false
		}
	}
	for _, a := range acls {
		if applies(a) && who(a) && a.Permission == PermissionAllow && implies(a.Operation, r.Operation) {
			return true
		}
	}
	return false
}

func TestAuthorizerMatchesSpecification(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	names := []string{"a", "ab", "abc", "b", "ba", "*", "abd"}
	principals := []string{"User:u1", "User:u2", "User:*"}
	hosts := []string{"*", "10.0.0.1", "10.0.0.2"}
	ops := []Operation{OpAll, OpRead, OpWrite, OpDescribe, OpDelete, OpAlter, OpAlterConfigs, OpDescribeConfigs, OpCreate}
	for round := range 300 {
		var acls []ACL
		for range r.IntN(8) {
			a := ACL{ResourceType: ResourceTopic + ResourceType(r.IntN(2)), PatternType: PatternLiteral + PatternType(r.IntN(2)),
				Name: names[r.IntN(len(names))], Host: hosts[r.IntN(len(hosts))], Operation: ops[r.IntN(len(ops))],
				Permission: PermissionDeny + Permission(r.IntN(2))}
			a.Principal, _ = ParsePrincipal(principals[r.IntN(len(principals))])
			acls = append(acls, a)
		}
		cfg := AuthorizerConfig{AllowEveryoneIfNoACLFound: r.IntN(2) == 0}
		if r.IntN(4) == 0 {
			cfg.SuperUsers = []Principal{User("u2")}
		}
		a, _ := newAuthorizer(t, cfg, acls...)
		for range 30 {
			q := Request{Principal: User(fmt.Sprintf("u%d", 1+r.IntN(2))), Host: []netip.Addr{hostA, hostB}[r.IntN(2)],
				Operation: ops[1+r.IntN(len(ops)-1)], Resource: ResourceTopic + ResourceType(r.IntN(2)), Name: names[r.IntN(len(names)-1)]}
			if got, want := a.Authorize(q), naiveAuthorize(acls, cfg, q); got != want {
				t.Fatalf("round %d: Authorize(%+v) = %v, specification says %v; acls %v", round, q, got, want, acls)
			}
		}
	}
}

func TestACLValidateAndFilter(t *testing.T) {
	t.Parallel()
	for _, bad := range []ACL{
		{ResourceType: ResourceAny, PatternType: PatternLiteral, Name: "t", Principal: User("a"), Host: "*", Operation: OpRead, Permission: PermissionAllow},
		{ResourceType: ResourceTopic, PatternType: PatternMatch, Name: "t", Principal: User("a"), Host: "*", Operation: OpRead, Permission: PermissionAllow},
		{ResourceType: ResourceTopic, PatternType: PatternLiteral, Name: "", Principal: User("a"), Host: "*", Operation: OpRead, Permission: PermissionAllow},
		{ResourceType: ResourceCluster, PatternType: PatternLiteral, Name: "c", Principal: User("a"), Host: "*", Operation: OpRead, Permission: PermissionAllow},
		{ResourceType: ResourceTopic, PatternType: PatternLiteral, Name: "t", Principal: User("a"), Host: "*", Operation: OpAny, Permission: PermissionAllow},
		{ResourceType: ResourceTopic, PatternType: PatternLiteral, Name: "t", Principal: User("a"), Host: "*", Operation: OpRead, Permission: PermissionAny},
		{ResourceType: ResourceTopic, PatternType: PatternLiteral, Name: "t", Principal: User("a"), Host: "host.example", Operation: OpRead, Permission: PermissionAllow},
		{ResourceType: ResourceTopic, PatternType: PatternLiteral, Name: "t", Host: "*", Operation: OpRead, Permission: PermissionAllow},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%v validated", bad)
		}
	}
	a := acl(t, "User:a 10.0.0.1 READ ALLOW TOPIC PREFIXED ord")
	back, err := FromBinding(a.Binding())
	if err != nil || back != a {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	for _, tc := range []struct {
		f    ACLFilter
		want bool
	}{
		{ACLFilter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, true},
		{ACLFilter{ResourceType: ResourceAny, PatternType: PatternMatch, Name: "orders", Operation: OpAny, Permission: PermissionAny}, true},
		{ACLFilter{ResourceType: ResourceAny, PatternType: PatternMatch, Name: "or", Operation: OpAny, Permission: PermissionAny}, false},
		{ACLFilter{ResourceType: ResourceTopic, PatternType: PatternLiteral, Name: "ord", Operation: OpAny, Permission: PermissionAny}, false},
		{ACLFilter{ResourceType: ResourceTopic, PatternType: PatternPrefixed, Name: "ord", Operation: OpRead, Permission: PermissionAllow}, true},
		{ACLFilter{ResourceType: ResourceAny, PatternType: PatternAny, Host: "::ffff:10.0.0.1", Operation: OpAny, Permission: PermissionAny}, true},
		{ACLFilter{ResourceType: ResourceAny, PatternType: PatternAny, Principal: "User:b", Operation: OpAny, Permission: PermissionAny}, false},
		{ACLFilter{ResourceType: ResourceGroup, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}, false},
	} {
		if got := tc.f.Matches(a); got != tc.want {
			t.Errorf("%+v matches %v: %v, want %v", tc.f, a, got, tc.want)
		}
	}
	if op, err := ParseOperation("DescribeConfigs"); err != nil || op != OpDescribeConfigs {
		t.Fatalf("DescribeConfigs: %v %v", op, err)
	}
	if _, err := ParseOperation("unknown"); err == nil {
		t.Fatal("UNKNOWN parsed")
	}
	if su, err := ParseSuperUsers("User:a; User:b;"); err != nil || len(su) != 2 || su[1] != User("b") {
		t.Fatalf("super users %v %v", su, err)
	}
}
