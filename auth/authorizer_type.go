package auth

import "net/netip"

// hardcodedName is the resource name Kafka asks about first in authorizeByResourceType: super users,
// and allow.everyone.if.no.acl.found, pass through it.
const hardcodedName = "hardcode"

// AuthorizeByResourceType tells whether p may do op on at least one resource of type rt, as Kafka's
// Authorizer.authorizeByResourceType (KIP-679: an idempotent producer needs Write on some topic):
// an allow of the literal "*" or of the prefix "" grants, a deny of either refuses; otherwise some
// allowed literal or prefix must be left open by the literal and prefixed denies.
func (a *Authorizer) AuthorizeByResourceType(p Principal, host netip.Addr, op Operation, rt ResourceType) bool {
	if a.authorize(Request{Principal: p, Host: host, Operation: op, Resource: rt, Name: hardcodedName}) {
		return true
	}
	t := a.index().types[rt]
	if t == nil {
		return false
	}
	principal, h := p.String(), hostOf(host)
	deny := map[PatternType]map[string]bool{PatternLiteral: {}, PatternPrefixed: {}}
	allow := map[PatternType][]string{}
	wildAllow := false
	for _, acl := range t.all {
		e := aclEntry{principal: acl.Principal.String(), host: acl.Host, op: acl.Operation, perm: acl.Permission}
		if !e.matches(principal, h) || (e.op != op && e.op != OpAll) {
			continue
		}
		wild := (acl.PatternType == PatternLiteral && acl.Name == WildcardResource) || (acl.PatternType == PatternPrefixed && acl.Name == "")
		switch {
		case e.perm == PermissionDeny && wild:
			return false
		case e.perm == PermissionDeny:
			deny[acl.PatternType][acl.Name] = true
		case wild:
			wildAllow = true
		default:
			allow[acl.PatternType] = append(allow[acl.PatternType], acl.Name)
		}
	}
	if wildAllow {
		return true
	}
	for pt, names := range allow {
		for _, name := range names {
			if !(pt == PatternLiteral && deny[PatternLiteral][name]) && !deniedByPrefix(name, deny[PatternPrefixed]) {
				return true
			}
		}
	}
	return false
}

// deniedByPrefix tells whether a prefix of name (itself included) is denied.
func deniedByPrefix(name string, prefixes map[string]bool) bool {
	for i := 1; i <= len(name); i++ {
		if prefixes[name[:i]] {
			return true
		}
	}
	return false
}
