package coord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The SCRAM mechanisms a credential may be stored for.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// ScramMechanisms lists the mechanisms credentials are stored for.
var ScramMechanisms = []string{ScramSHA256, ScramSHA512}

// ErrBadSecurityKey: a user name, quota entity or binding cannot be stored as given.
var ErrBadSecurityKey = errors.New("coord: invalid security entity")

// ScramCredential is what a server stores of a SCRAM password (RFC 5802): never the password.
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// UserCredential is one user's credential of one mechanism.
type UserCredential struct {
	User      string
	Mechanism string
	ScramCredential
}

// ACLBinding is one Kafka ACL: who (principal, host) may or may not (permission) do what
// (operation) to which resources (type, pattern type, name). coord stores it as given; the auth
// package gives the fields their meaning and canonical spelling.
type ACLBinding struct {
	ResourceType string `json:"resource_type"`
	PatternType  string `json:"pattern_type"`
	Name         string `json:"name"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

// ID is the binding's key under acls/: a hash of its fields, so that one binding is one key.
func (b ACLBinding) ID() string {
	h := sha256.New()
	for _, f := range []string{b.ResourceType, b.PatternType, b.Name, b.Principal, b.Host, b.Operation, b.Permission} {
		// Length-prefixed, so that no two bindings share an encoding.
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// QuotaDefault is the name that stands for an entity type's default in quota keys, as in Kafka.
const QuotaDefault = "<default>"

// EntityName is one part of a quota entity: absent (zero value), a name, or the type's default.
type EntityName struct {
	Set     bool
	Default bool
	Name    string
}

// Named is the entity part of one name.
func Named(name string) EntityName { return EntityName{Set: true, Name: name} }

// DefaultEntity is the default of an entity type.
var DefaultEntity = EntityName{Set: true, Default: true}

func (n EntityName) segment() string {
	if n.Default {
		return QuotaDefault
	}
	return url.PathEscape(n.Name)
}

func (n EntityName) String() string {
	switch {
	case !n.Set:
		return ""
	case n.Default:
		return QuotaDefault
	}
	return n.Name
}

// QuotaEntity is what a client quota applies to: a user, a client id, or both; each part may be
// the default of its type.
type QuotaEntity struct {
	User     EntityName
	ClientID EntityName
}

func (e QuotaEntity) String() string {
	var parts []string
	if e.User.Set {
		parts = append(parts, "user="+e.User.String())
	}
	if e.ClientID.Set {
		parts = append(parts, "client-id="+e.ClientID.String())
	}
	return strings.Join(parts, ",")
}

// ClientQuota is an entity's quota values (producer_byte_rate, consumer_byte_rate: bytes/s).
type ClientQuota struct {
	Entity QuotaEntity
	Values map[string]float64
}

const (
	dirUsers  = "users/"
	dirACLs   = "acls/"
	dirQuotas = "quotas/"
)

func (k keys) users() string { return k.prefix + dirUsers }

// user is a user's directory; the trailing slash keeps alice from matching alice2.
func (k keys) user(name string) string { return k.users() + url.PathEscape(name) + "/" }
func (k keys) acls() string            { return k.prefix + dirACLs }
func (k keys) acl(id string) string    { return k.acls() + id }
func (k keys) quotas() string          { return k.prefix + dirQuotas }

func (k keys) quota(e QuotaEntity) string {
	var b strings.Builder
	b.WriteString(k.quotas())
	if e.User.Set {
		b.WriteString("user/" + e.User.segment())
	}
	if e.ClientID.Set {
		if e.User.Set {
			b.WriteString("/")
		}
		b.WriteString("client-id/" + e.ClientID.segment())
	}
	return b.String()
}

// parseUserKey reads "<user>/<mechanism>" below users/.
func parseUserKey(rest string) (user, mech string, ok bool) {
	esc, mech, found := strings.Cut(rest, "/")
	if !found || !slices.Contains(ScramMechanisms, mech) {
		return "", "", false
	}
	user, err := url.PathUnescape(esc)
	if err != nil || user == "" {
		return "", "", false
	}
	return user, mech, true
}

// parseQuotaKey reads the entity of a key below quotas/.
func parseQuotaKey(rest string) (QuotaEntity, bool) {
	parts := strings.Split(rest, "/")
	var e QuotaEntity
	for len(parts) >= 2 {
		n, ok := parseEntityName(parts[1])
		if !ok {
			return QuotaEntity{}, false
		}
		switch {
		case parts[0] == "user" && !e.User.Set && !e.ClientID.Set:
			e.User = n
		case parts[0] == "client-id" && !e.ClientID.Set:
			e.ClientID = n
		default:
			return QuotaEntity{}, false
		}
		parts = parts[2:]
	}
	return e, len(parts) == 0 && (e.User.Set || e.ClientID.Set)
}

func parseEntityName(seg string) (EntityName, bool) {
	if seg == QuotaDefault {
		return DefaultEntity, true
	}
	name, err := url.PathUnescape(seg)
	if err != nil {
		return EntityName{}, false
	}
	return Named(name), true
}

// PutScramCredential stores user's credential of mechanism, replacing any earlier one.
func (c *Client) PutScramCredential(ctx context.Context, user, mechanism string, cred ScramCredential) error {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	if user == "" || !slices.Contains(ScramMechanisms, mechanism) {
		return fmt.Errorf("%w: user %q, mechanism %q", ErrBadSecurityKey, user, mechanism)
	}
	v, err := json.Marshal(cred)
	if err != nil {
		return err
	}
	if _, err := c.etcd.Put(ctx, c.keys.user(user)+mechanism, string(v)); err != nil {
		return fmt.Errorf("coord: put credential of %s: %w", user, err)
	}
	return nil
}

// DeleteScramCredential deletes user's credential of mechanism, or of every mechanism when
// mechanism is empty. It reports how many it deleted.
func (c *Client) DeleteScramCredential(ctx context.Context, user, mechanism string) (int, error) {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	if user == "" || (mechanism != "" && !slices.Contains(ScramMechanisms, mechanism)) {
		return 0, fmt.Errorf("%w: user %q, mechanism %q", ErrBadSecurityKey, user, mechanism)
	}
	key, opts := c.keys.user(user)+mechanism, []clientv3.OpOption(nil)
	if mechanism == "" {
		opts = append(opts, clientv3.WithPrefix())
	}
	resp, err := c.etcd.Delete(ctx, key, opts...)
	if err != nil {
		return 0, fmt.Errorf("coord: delete credential of %s: %w", user, err)
	}
	return int(resp.Deleted), nil
}

// ScramCredentials reads every stored credential from etcd, sorted by user and mechanism (tools;
// agents read their view).
func (c *Client) ScramCredentials(ctx context.Context) ([]UserCredential, error) {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	resp, err := c.etcd.Get(ctx, c.keys.users(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coord: read credentials: %w", err)
	}
	var out []UserCredential
	for _, kv := range resp.Kvs {
		user, mech, ok := parseUserKey(strings.TrimPrefix(string(kv.Key), c.keys.users()))
		var cred ScramCredential
		if !ok || json.Unmarshal(kv.Value, &cred) != nil {
			continue
		}
		out = append(out, UserCredential{User: user, Mechanism: mech, ScramCredential: cred})
	}
	sortCredentials(out)
	return out, nil
}

func sortCredentials(cs []UserCredential) {
	slices.SortFunc(cs, func(a, b UserCredential) int {
		if c := strings.Compare(a.User, b.User); c != 0 {
			return c
		}
		return strings.Compare(a.Mechanism, b.Mechanism)
	})
}
