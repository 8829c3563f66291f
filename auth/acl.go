package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/streamhouse/streamhouse/coord"
)

// Operation is what an ACL allows or denies. The values are Kafka's wire codes (AclOperation), so
// that the Kafka path converts without a table.
type Operation int8

// Kafka's operations.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1 // filters only
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	OpCreateTokens    Operation = 13
	OpDescribeTokens  Operation = 14
)

// ResourceType is what kind of resource an ACL is about; Kafka's wire codes.
type ResourceType int8

// Kafka's resource types.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1 // filters only
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7
)

// PatternType is how an ACL's name matches resource names; Kafka's wire codes.
type PatternType int8

// Kafka's pattern types.
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1 // filters only: either pattern type
	PatternMatch    PatternType = 2 // filters only: every binding that applies to the named resource
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Permission is whether an ACL allows or denies; Kafka's wire codes.
type Permission int8

// Kafka's permission types.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1 // filters only
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

// ClusterName is the one name of the cluster resource, as in Kafka.
const ClusterName = "kafka-cluster"

// WildcardResource is the literal name that matches every resource of its type.
const WildcardResource = "*"

// Names as Kafka's enums spell them; stored in etcd in this form.
var (
	opNames = map[Operation]string{OpUnknown: "UNKNOWN", OpAny: "ANY", OpAll: "ALL", OpRead: "READ", OpWrite: "WRITE",
		OpCreate: "CREATE", OpDelete: "DELETE", OpAlter: "ALTER", OpDescribe: "DESCRIBE", OpClusterAction: "CLUSTER_ACTION",
		OpDescribeConfigs: "DESCRIBE_CONFIGS", OpAlterConfigs: "ALTER_CONFIGS", OpIdempotentWrite: "IDEMPOTENT_WRITE",
		OpCreateTokens: "CREATE_TOKENS", OpDescribeTokens: "DESCRIBE_TOKENS"}
	resourceNames = map[ResourceType]string{ResourceUnknown: "UNKNOWN", ResourceAny: "ANY", ResourceTopic: "TOPIC",
		ResourceGroup: "GROUP", ResourceCluster: "CLUSTER", ResourceTransactionalID: "TRANSACTIONAL_ID",
		ResourceDelegationToken: "DELEGATION_TOKEN", ResourceUser: "USER"}
	patternNames = map[PatternType]string{PatternUnknown: "UNKNOWN", PatternAny: "ANY", PatternMatch: "MATCH",
		PatternLiteral: "LITERAL", PatternPrefixed: "PREFIXED"}
	permissionNames = map[Permission]string{PermissionUnknown: "UNKNOWN", PermissionAny: "ANY", PermissionDeny: "DENY",
		PermissionAllow: "ALLOW"}
)

func (o Operation) String() string    { return nameOf(opNames, o) }
func (r ResourceType) String() string { return nameOf(resourceNames, r) }
func (p PatternType) String() string  { return nameOf(patternNames, p) }
func (p Permission) String() string   { return nameOf(permissionNames, p) }

func nameOf[K ~int8](names map[K]string, k K) string {
	if n, ok := names[k]; ok {
		return n
	}
	return fmt.Sprintf("UNKNOWN(%d)", int8(k))
}

// parseName reads a name as Kafka's enums, its CLI (DescribeConfigs, describe-configs) or anyone
// writes it: case and separators do not matter.
func parseName[K ~int8](names map[K]string, what, s string) (K, error) {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(s))
	}
	for k, n := range names {
		if norm(n) == norm(s) && norm(s) != "unknown" {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: %s %q", ErrInvalidACL, what, s)
}

// ParseOperation, ParseResourceType, ParsePatternType and ParsePermission read the names.
func ParseOperation(s string) (Operation, error) { return parseName(opNames, "operation", s) }
func ParseResourceType(s string) (ResourceType, error) {
	return parseName(resourceNames, "resource type", s)
}
func ParsePatternType(s string) (PatternType, error) {
	return parseName(patternNames, "pattern type", s)
}
func ParsePermission(s string) (Permission, error) {
	return parseName(permissionNames, "permission", s)
}

// ErrInvalidACL: a binding or filter that Kafka would refuse (INVALID_REQUEST).
var ErrInvalidACL = errors.New("auth: invalid ACL")

// ACL is one binding with its fields given their meaning.
type ACL struct {
	ResourceType ResourceType
	PatternType  PatternType
	Name         string
	Principal    Principal
	Host         string // "*" or an IP address
	Operation    Operation
	Permission   Permission
}

// String writes a binding as Kafka's tools do.
func (a ACL) String() string {
	return fmt.Sprintf("(principal=%s, host=%s, operation=%s, permissionType=%s) on ResourcePattern(resourceType=%s, name=%s, patternType=%s)",
		a.Principal, a.Host, a.Operation, a.Permission, a.ResourceType, a.Name, a.PatternType)
}

// Validate checks a binding as Kafka's CreateAcls does and canonicalises its host.
func (a *ACL) Validate() error {
	switch {
	case a.ResourceType <= ResourceAny || a.ResourceType > ResourceUser:
		return fmt.Errorf("%w: resource type %s", ErrInvalidACL, a.ResourceType)
	case a.PatternType != PatternLiteral && a.PatternType != PatternPrefixed:
		return fmt.Errorf("%w: pattern type %s (want LITERAL or PREFIXED)", ErrInvalidACL, a.PatternType)
	case a.Name == "":
		return fmt.Errorf("%w: empty resource name", ErrInvalidACL)
	case a.ResourceType == ResourceCluster && (a.Name != ClusterName || a.PatternType != PatternLiteral):
		return fmt.Errorf("%w: the cluster resource is the literal %q", ErrInvalidACL, ClusterName)
	case a.Operation <= OpAny || a.Operation > OpDescribeTokens:
		return fmt.Errorf("%w: operation %s", ErrInvalidACL, a.Operation)
	case a.Permission != PermissionAllow && a.Permission != PermissionDeny:
		return fmt.Errorf("%w: permission %s", ErrInvalidACL, a.Permission)
	case a.Principal.Type == "" || a.Principal.Name == "":
		return fmt.Errorf("%w: principal %q", ErrInvalidACL, a.Principal)
	}
	h, err := canonicalHost(a.Host)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidACL, err)
	}
	a.Host = h
	return nil
}

// Binding is the form coord stores.
func (a ACL) Binding() coord.ACLBinding {
	return coord.ACLBinding{ResourceType: a.ResourceType.String(), PatternType: a.PatternType.String(), Name: a.Name,
		Principal: a.Principal.String(), Host: a.Host, Operation: a.Operation.String(), Permission: a.Permission.String()}
}

// FromBinding reads and validates a stored binding.
func FromBinding(b coord.ACLBinding) (ACL, error) {
	var a ACL
	var err error
	if a.ResourceType, err = ParseResourceType(b.ResourceType); err != nil {
		return ACL{}, err
	}
	if a.PatternType, err = ParsePatternType(b.PatternType); err != nil {
		return ACL{}, err
	}
	if a.Principal, err = ParsePrincipal(b.Principal); err != nil {
		return ACL{}, fmt.Errorf("%w: %v", ErrInvalidACL, err)
	}
	if a.Permission, err = ParsePermission(b.Permission); err != nil {
		return ACL{}, err
	}
	a.Name, a.Host = b.Name, b.Host
	if a.Operation, err = ParseOperation(b.Operation); err != nil {
		return a, err // the caller may still act on a deny of an unknown operation
	}
	return a, a.Validate()
}

// ACLFilter selects bindings, as DescribeAcls and DeleteAcls filters do: a zero field of a
// string kind, and the Any values, match everything.
type ACLFilter struct {
	ResourceType ResourceType // ResourceAny: every type
	PatternType  PatternType  // PatternAny, PatternMatch, PatternLiteral or PatternPrefixed
	Name         string       // "": every name
	Principal    string       // "": every principal
	Host         string       // "": every host
	Operation    Operation    // OpAny: every operation
	Permission   Permission   // PermissionAny: both
}

// Validate checks a filter as Kafka does: the Unknown values are refused.
func (f ACLFilter) Validate() error {
	switch {
	case f.ResourceType == ResourceUnknown, f.PatternType == PatternUnknown, f.Operation == OpUnknown,
		f.Permission == PermissionUnknown:
		return fmt.Errorf("%w: filter with an UNKNOWN field", ErrInvalidACL)
	}
	return nil
}

// Matches tells whether a binding passes the filter. PatternMatch with a name selects every
// binding that applies to that resource: its literal name, the literal "*", and the prefixes of it.
func (f ACLFilter) Matches(a ACL) bool {
	switch {
	case f.ResourceType != ResourceAny && f.ResourceType != a.ResourceType,
		f.Principal != "" && f.Principal != a.Principal.String(),
		f.Operation != OpAny && f.Operation != a.Operation,
		f.Permission != PermissionAny && f.Permission != a.Permission:
		return false
	case f.Host != "":
		if h, err := canonicalHost(f.Host); err != nil || h != a.Host {
			return false
		}
	}
	return f.matchesPattern(a)
}

func (f ACLFilter) matchesPattern(a ACL) bool {
	switch f.PatternType {
	case PatternAny:
		return f.Name == "" || f.Name == a.Name
	case PatternMatch:
		if f.Name == "" {
			return true
		}
		if a.PatternType == PatternLiteral {
			return a.Name == f.Name || a.Name == WildcardResource
		}
		return strings.HasPrefix(f.Name, a.Name)
	default:
		return f.PatternType == a.PatternType && (f.Name == "" || f.Name == a.Name)
	}
}
