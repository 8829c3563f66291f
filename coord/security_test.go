package coord

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestScramCredentialsStoredAndWatched(t *testing.T) {
	t.Parallel()
	c := newTestEtcd(t).client(t)
	k := runCache(t, c, nil)
	ctx := testCtx(t)
	cred := ScramCredential{Salt: []byte("salt"), Iterations: 4096, StoredKey: []byte("stored"), ServerKey: []byte("server")}
	for _, u := range []string{"alice", "alice2", "we/ird,user=x"} {
		for _, m := range ScramMechanisms {
			if err := c.PutScramCredential(ctx, u, m, cred); err != nil {
				t.Fatal(err)
			}
		}
	}
	syncCache(t, k)
	if got, ok := k.ScramCredential("we/ird,user=x", ScramSHA512); !ok || got.Iterations != 4096 || string(got.StoredKey) != "stored" {
		t.Fatalf("view: %+v %v", got, ok)
	}
	if n, err := c.DeleteScramCredential(ctx, "alice", ""); err != nil || n != 2 {
		t.Fatalf("delete alice: %d, %v; want 2 deleted", n, err)
	}
	if n, err := c.DeleteScramCredential(ctx, "alice2", ScramSHA256); err != nil || n != 1 {
		t.Fatalf("delete alice2's SHA-256: %d, %v", n, err)
	}
	syncCache(t, k)
	var got []string
	for _, uc := range k.ScramCredentials() {
		got = append(got, uc.User+" "+uc.Mechanism)
	}
	want := []string{"alice2 SCRAM-SHA-512", "we/ird,user=x SCRAM-SHA-256", "we/ird,user=x SCRAM-SHA-512"}
	if !slices.Equal(got, want) {
		t.Fatalf("view after deletes: %q, want %q", got, want)
	}
	fromEtcd, err := c.ScramCredentials(ctx)
	if err != nil || len(fromEtcd) != 3 || fromEtcd[0].User != "alice2" {
		t.Fatalf("from etcd: %+v, %v", fromEtcd, err)
	}
	if _, err := c.DeleteScramCredential(ctx, "", ""); err == nil {
		t.Fatal("deleting the empty user (every user) was not refused")
	}
	if err := c.PutScramCredential(ctx, "bob", "SCRAM-SHA-1", cred); err == nil {
		t.Fatal("an unknown mechanism was stored")
	}
}

func TestACLsStoredAndWatched(t *testing.T) {
	t.Parallel()
	c := newTestEtcd(t).client(t)
	k := runCache(t, c, nil)
	ctx := testCtx(t)
	gen := k.SecurityGeneration()
	// More bindings than one Txn of the test etcd allows (128 operations).
	var bs []ACLBinding
	for i := range 300 {
		bs = append(bs, ACLBinding{ResourceType: "topic", PatternType: "literal", Name: fmt.Sprintf("t%d", i),
			Principal: "User:alice", Host: "*", Operation: "read", Permission: "allow"})
	}
	if err := c.PutACLs(ctx, bs); err != nil {
		t.Fatal(err)
	}
	if err := c.PutACLs(ctx, bs[:10]); err != nil { // again: the same keys
		t.Fatal(err)
	}
	syncCache(t, k)
	if got := k.ACLs(); len(got) != 300 {
		t.Fatalf("view holds %d bindings, want 300", len(got))
	}
	if k.SecurityGeneration() == gen {
		t.Fatal("security generation did not move")
	}
	n, err := c.DeleteACLs(ctx, append(bs[:200:200], ACLBinding{Name: "never stored"}))
	if err != nil || n != 200 {
		t.Fatalf("deleted %d, %v; want 200", n, err)
	}
	syncCache(t, k)
	got, err := c.ACLs(ctx)
	if err != nil || len(got) != 100 || len(k.ACLs()) != 100 {
		t.Fatalf("after delete: etcd %d (%v), view %d; want 100", len(got), err, len(k.ACLs()))
	}
}

func TestACLBindingIDDistinguishesFields(t *testing.T) {
	t.Parallel()
	a := ACLBinding{ResourceType: "topic", PatternType: "literal", Name: "ab", Principal: "User:c"}
	b := ACLBinding{ResourceType: "topic", PatternType: "literal", Name: "a", Principal: "bUser:c"}
	if a.ID() == b.ID() || len(a.ID()) != 32 || a.ID() != a.ID() {
		t.Fatalf("ids %s %s", a.ID(), b.ID())
	}
}

func TestQuotasStoredAndWatched(t *testing.T) {
	t.Parallel()
	c := newTestEtcd(t).client(t)
	k := runCache(t, c, nil)
	ctx := testCtx(t)
	alice := QuotaEntity{User: Named("alice")}
	both := QuotaEntity{User: DefaultEntity, ClientID: Named("app/1")}
	if err := c.AlterQuota(ctx, alice, map[string]float64{"producer_byte_rate": 1024, "consumer_byte_rate": 2048}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.AlterQuota(ctx, both, map[string]float64{"producer_byte_rate": 10}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.AlterQuota(ctx, alice, nil, []string{"consumer_byte_rate"}); err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	view := map[QuotaEntity]map[string]float64{}
	for _, q := range k.Quotas() {
		view[q.Entity] = q.Values
	}
	if len(view) != 2 || view[alice]["producer_byte_rate"] != 1024 || len(view[alice]) != 1 || view[both]["producer_byte_rate"] != 10 {
		t.Fatalf("view %v", view)
	}
	if err := c.AlterQuota(ctx, alice, nil, []string{"producer_byte_rate"}); err != nil { // nothing left: deleted
		t.Fatal(err)
	}
	syncCache(t, k)
	stored, err := c.Quotas(ctx)
	if err != nil || len(stored) != 1 || stored[0].Entity != both || len(k.Quotas()) != 1 {
		t.Fatalf("after removing alice's last value: %+v, %v; view %+v", stored, err, k.Quotas())
	}
	if err := c.AlterQuota(ctx, QuotaEntity{}, map[string]float64{"producer_byte_rate": 1}, nil); err == nil {
		t.Fatal("an empty entity was stored")
	}
}

func TestQuotaKeysRoundTrip(t *testing.T) {
	t.Parallel()
	k := keys{prefix: "/p/"}
	names := []EntityName{{}, DefaultEntity, Named(""), Named(QuotaDefault), Named("a/b"), Named("%3C"), Named("x y,z=é")}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		e := QuotaEntity{User: names[r.IntN(len(names))], ClientID: names[r.IntN(len(names))]}
		key := k.quota(e)
		p := k.parse(key)
		if !e.User.Set && !e.ClientID.Set {
			if p.kind != kindOther {
				t.Fatalf("empty entity's key %q parsed as %+v", key, p)
			}
			continue
		}
		if p.kind != kindQuota || p.quota != e {
			t.Fatalf("entity %+v: key %q parsed as %+v", e, key, p)
		}
	}
	for _, bad := range []string{"quotas/", "quotas/user", "quotas/client-id/a/user/b", "quotas/user/a/user/b", "quotas/host/a", "quotas/user/%zz"} {
		if p := k.parse("/p/" + bad); p.kind != kindOther {
			t.Errorf("%q parsed as %+v", bad, p)
		}
	}
	for _, u := range []string{"a", "a/b", "%", "<default>"} {
		if p := k.parse(k.user(u) + ScramSHA256); p.kind != kindUser || p.name != u || p.mech != ScramSHA256 {
			t.Errorf("user %q: parsed as %+v", u, p)
		}
	}
	for _, bad := range []string{"users/a", "users/a/SCRAM-SHA-1", "users//SCRAM-SHA-256", "acls/", "acls/a/b"} {
		if p := k.parse("/p/" + bad); p.kind != kindOther {
			t.Errorf("%q parsed as %+v", bad, p)
		}
	}
}

func TestSecurityGenerationOnlyMovesForSecurityKeys(t *testing.T) {
	t.Parallel()
	c := newTestEtcd(t).client(t)
	k := runCache(t, c, nil)
	ctx := testCtx(t)
	gen := k.SecurityGeneration()
	newTopic(t, c, "t", 2)
	syncCache(t, k)
	if k.SecurityGeneration() != gen {
		t.Fatal("a topic moved the security generation")
	}
	if _, err := c.Etcd().Put(ctx, c.keys.acl("0123"), "not json"); err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	if len(k.ACLs()) != 0 {
		t.Fatalf("an undecodable binding is in the view: %+v", k.ACLs())
	}
	if err := c.PutScramCredential(ctx, "u", ScramSHA256, ScramCredential{Iterations: 4096}); err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	if k.SecurityGeneration() == gen {
		t.Fatal("a credential did not move the security generation")
	}
}
