package coord

import (
	"maps"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// securityState is the view's part of credentials, ACLs and quotas (docs/INTERNALS.md, "Security").
// Agents answer authentication and authorization from it without asking etcd.
type securityState struct {
	creds  map[string]map[string]ScramCredential // user → mechanism → credential
	acls   map[string]ACLBinding                 // binding id → binding
	quotas map[QuotaEntity]map[string]float64
	// changed is set by every change and cleared by the Cache as it bumps its security generation.
	changed bool
}

func newSecurityState() securityState {
	return securityState{
		creds:  map[string]map[string]ScramCredential{},
		acls:   map[string]ACLBinding{},
		quotas: map[QuotaEntity]map[string]float64{},
	}
}

// parseSecurityKey takes apart a key below users/, acls/ or quotas/ (rest is below the prefix).
func parseSecurityKey(rest string) parsedKey {
	switch {
	case strings.HasPrefix(rest, dirUsers):
		if user, mech, ok := parseUserKey(rest[len(dirUsers):]); ok {
			return parsedKey{kind: kindUser, name: user, mech: mech}
		}
	case strings.HasPrefix(rest, dirACLs):
		if id := rest[len(dirACLs):]; id != "" && !strings.Contains(id, "/") {
			return parsedKey{kind: kindACL, name: id}
		}
	case strings.HasPrefix(rest, dirQuotas):
		if e, ok := parseQuotaKey(rest[len(dirQuotas):]); ok {
			return parsedKey{kind: kindQuota, quota: e}
		}
	}
	return parsedKey{}
}

// putSecurity applies a put of a user, ACL or quota key; a value that does not decode is logged
// and leaves the view as it was.
func (st *state) putSecurity(k parsedKey, kv *mvccpb.KeyValue) {
	switch k.kind {
	case kindUser:
		var c ScramCredential
		if !st.decode(kv, &c) {
			return
		}
		if st.sec.creds[k.name] == nil {
			st.sec.creds[k.name] = map[string]ScramCredential{}
		}
		st.sec.creds[k.name][k.mech] = c
	case kindACL:
		var b ACLBinding
		if !st.decode(kv, &b) {
			return
		}
		st.sec.acls[k.name] = b
	case kindQuota:
		var v map[string]float64
		if !st.decode(kv, &v) {
			return
		}
		st.sec.quotas[k.quota] = v
	}
	st.sec.changed = true
}

// delSecurity applies the deletion of a user, ACL or quota key.
func (st *state) delSecurity(k parsedKey) {
	switch k.kind {
	case kindUser:
		delete(st.sec.creds[k.name], k.mech)
		if len(st.sec.creds[k.name]) == 0 {
			delete(st.sec.creds, k.name)
		}
	case kindACL:
		delete(st.sec.acls, k.name)
	case kindQuota:
		delete(st.sec.quotas, k.quota)
	}
	st.sec.changed = true
}

// SecurityGeneration changes whenever the view's credentials, ACLs or quotas may have: readers
// that index them (the authorizer) rebuild when it moved.
func (k *Cache) SecurityGeneration() uint64 { return k.secGen.Load() }

// ScramCredential is user's stored credential of mechanism.
func (k *Cache) ScramCredential(user, mechanism string) (ScramCredential, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	c, ok := k.st.sec.creds[user][mechanism]
	return c, ok
}

// ScramCredentials lists every stored credential, sorted by user and mechanism.
func (k *Cache) ScramCredentials() []UserCredential {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []UserCredential
	for user, byMech := range k.st.sec.creds {
		for mech, c := range byMech {
			out = append(out, UserCredential{User: user, Mechanism: mech, ScramCredential: c})
		}
	}
	sortCredentials(out)
	return out
}

// ACLs lists every ACL binding, sorted.
func (k *Cache) ACLs() []ACLBinding {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := slices.Collect(maps.Values(k.st.sec.acls))
	sortACLs(out)
	return out
}

// Quotas lists every client quota; values are copies.
func (k *Cache) Quotas() []ClientQuota {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]ClientQuota, 0, len(k.st.sec.quotas))
	for e, v := range k.st.sec.quotas {
		out = append(out, ClientQuota{Entity: e, Values: maps.Clone(v)})
	}
	return out
}
