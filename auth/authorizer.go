package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// ACLSource is where the authorizer reads bindings: coord's watched view (*coord.Cache).
type ACLSource interface {
	SecurityGeneration() uint64
	ACLs() []coord.ACLBinding
}

// AuthorizerConfig configures an Authorizer.
type AuthorizerConfig struct {
	// SuperUsers may do everything (Kafka's super.users).
	SuperUsers []Principal
	// AllowEveryoneIfNoACLFound allows what no binding applies to (Kafka's
	// allow.everyone.if.no.acl.found); off, a resource without bindings is closed.
	AllowEveryoneIfNoACLFound bool
	Logger                    hclog.Logger          // default: no logs
	Registerer                prometheus.Registerer // nil: metrics kept, not registered
}

// Request is one question to the authorizer: may Principal do Operation on the resource of type
// Resource named Name, connecting from Host.
type Request struct {
	Principal Principal
	Host      netip.Addr
	Operation Operation
	Resource  ResourceType
	Name      string
}

// Authorizer answers Requests with Kafka's ACL semantics (docs/INTERNALS.md, "Authorization") from
// the bindings of its source, indexed afresh when the source's generation moves. Safe for
// concurrent use.
type Authorizer struct {
	src     ACLSource
	cfg     AuthorizerConfig
	supers  map[string]bool
	log     hclog.Logger
	metrics *authzMetrics

	mu  sync.Mutex // serialises rebuilds
	idx atomic.Pointer[aclIndex]
}

// NewAuthorizer validates cfg; it starts nothing.
func NewAuthorizer(src ACLSource, cfg AuthorizerConfig) (*Authorizer, error) {
	if src == nil {
		return nil, errors.New("auth: authorizer without an ACL source")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	supers := map[string]bool{}
	for _, p := range cfg.SuperUsers {
		if p.Type == "" || p.Name == "" {
			return nil, fmt.Errorf("auth: super user %q: want Type:Name", p)
		}
		supers[p.String()] = true
	}
	return &Authorizer{src: src, cfg: cfg, supers: supers, log: cfg.Logger.Named("authorizer"),
		metrics: newAuthzMetrics(cfg.Registerer)}, nil
}

// ParseSuperUsers reads Kafka's super.users: principals separated by semicolons.
func ParseSuperUsers(s string) ([]Principal, error) {
	var out []Principal
	for _, part := range strings.Split(s, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		p, err := ParsePrincipal(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Authorize tells whether r is allowed.
func (a *Authorizer) Authorize(r Request) bool {
	ok := a.authorize(r)
	a.metrics.count(r.Resource, ok)
	return ok
}

func (a *Authorizer) authorize(r Request) bool {
	principal := r.Principal.String()
	if a.supers[principal] {
		return true
	}
	lists := a.index().types[r.Resource].applying(r.Name)
	if len(lists) == 0 {
		return a.cfg.AllowEveryoneIfNoACLFound
	}
	host := hostOf(r.Host)
	for _, l := range lists {
		for _, e := range l {
			if e.perm == PermissionDeny && e.matches(principal, host) && (e.op == r.Operation || e.op == OpAll) {
				return false
			}
		}
	}
	for _, l := range lists {
		for _, e := range l {
			if e.perm == PermissionAllow && e.matches(principal, host) && implies(e.op, r.Operation) {
				return true
			}
		}
	}
	return false
}

// implies tells whether an allow of have grants want: All grants everything, Read, Write, Delete
// and Alter grant Describe, AlterConfigs grants DescribeConfigs.
func implies(have, want Operation) bool {
	switch {
	case have == want, have == OpAll:
		return true
	case want == OpDescribe:
		return have == OpRead || have == OpWrite || have == OpDelete || have == OpAlter
	case want == OpDescribeConfigs:
		return have == OpAlterConfigs
	}
	return false
}

// aclEntry is a binding within its resource pattern's list.
type aclEntry struct {
	principal string
	host      string
	op        Operation
	perm      Permission
}

func (e aclEntry) matches(principal, host string) bool {
	return (e.principal == principal || e.principal == wildcardPrincipal) && (e.host == host || e.host == WildcardHost)
}

var wildcardPrincipal = WildcardPrincipal.String()

// typeIndex holds one resource type's bindings by pattern.
type typeIndex struct {
	literal    map[string][]aclEntry
	wildcard   []aclEntry // the literal "*"
	prefixed   map[string][]aclEntry
	prefixLens []int // the distinct lengths of prefixed names, ascending
	all        []ACL
}

// applying lists the entry lists that apply to a resource named name.
func (t *typeIndex) applying(name string) [][]aclEntry {
	if t == nil {
		return nil
	}
	var out [][]aclEntry
	if l := t.literal[name]; len(l) > 0 {
		out = append(out, l)
	}
	if len(t.wildcard) > 0 {
		out = append(out, t.wildcard)
	}
	for _, n := range t.prefixLens {
		if n > len(name) {
			break
		}
		if l := t.prefixed[name[:n]]; len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// aclIndex is every binding of one security generation, by resource type.
type aclIndex struct {
	gen   uint64
	types map[ResourceType]*typeIndex
}

// index returns the index of the source's current generation, building it if needed.
func (a *Authorizer) index() *aclIndex {
	gen := a.src.SecurityGeneration()
	if idx := a.idx.Load(); idx != nil && idx.gen == gen {
		return idx
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if idx := a.idx.Load(); idx != nil && idx.gen == gen {
		return idx
	}
	// The generation is read before the bindings: a change in between is in them, and the next
	// question sees a newer generation and builds again.
	idx := a.build(gen, a.src.ACLs())
	a.idx.Store(idx)
	a.metrics.rebuilds.Inc()
	return idx
}

func (a *Authorizer) build(gen uint64, bindings []coord.ACLBinding) *aclIndex {
	idx := &aclIndex{gen: gen, types: map[ResourceType]*typeIndex{}}
	for _, b := range bindings {
		acl, ok := a.fromStored(b)
		if !ok {
			continue
		}
		t := idx.types[acl.ResourceType]
		if t == nil {
			t = &typeIndex{literal: map[string][]aclEntry{}, prefixed: map[string][]aclEntry{}}
			idx.types[acl.ResourceType] = t
		}
		t.add(acl)
	}
	return idx
}

func (t *typeIndex) add(acl ACL) {
	e := aclEntry{principal: acl.Principal.String(), host: acl.Host, op: acl.Operation, perm: acl.Permission}
	t.all = append(t.all, acl)
	switch {
	case acl.PatternType == PatternPrefixed:
		if _, ok := t.prefixed[acl.Name]; !ok {
			t.prefixLens = append(t.prefixLens, len(acl.Name))
			slices.Sort(t.prefixLens)
			t.prefixLens = slices.Compact(t.prefixLens)
		}
		t.prefixed[acl.Name] = append(t.prefixed[acl.Name], e)
	case acl.Name == WildcardResource:
		t.wildcard = append(t.wildcard, e)
	default:
		t.literal[acl.Name] = append(t.literal[acl.Name], e)
	}
}

// fromStored reads a stored binding. One that does not parse is left out, except a deny whose
// operation this version does not know: it is kept as a deny of All, so that a newer version's
// deny never opens access here.
func (a *Authorizer) fromStored(b coord.ACLBinding) (ACL, bool) {
	acl, err := FromBinding(b)
	if err == nil {
		return acl, true
	}
	if acl.Permission == PermissionDeny && acl.Operation == OpUnknown && acl.Principal.Name != "" {
		acl.Operation = OpAll
		if acl.Validate() == nil {
			a.log.Warn("ACL binding with an unknown operation: kept as a deny of All", "binding", fmt.Sprintf("%+v", b))
			return acl, true
		}
	}
	a.log.Warn("ignoring an ACL binding that does not parse", "binding", fmt.Sprintf("%+v", b), "error", err)
	return ACL{}, false
}
