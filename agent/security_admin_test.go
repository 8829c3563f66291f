package agent

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// Standard admin tools manage ACLs through the Kafka API: kadm creates, describes and deletes
// bindings, which take effect on the agent; a user who is not allowed Alter on the cluster may not.
func TestACLAdminAPIs(t *testing.T) {
	t.Parallel()
	_, a, admin, bob := securedPair(t)
	createTopic(t, admin, "shared", 1, nil)
	adm, bobAdm := kadm.NewClient(admin), kadm.NewClient(bob)
	ctx := testCtx(t)

	b := kadm.NewACLs().Allow("User:bob").Topics("shared").Operations(kadm.OpRead, kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral)
	if res, err := bobAdm.CreateACLs(ctx, b); err != nil || len(res) == 0 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob creates ACLs: %v %+v", err, res)
	}
	gen := a.cache.SecurityGeneration()
	res, err := adm.CreateACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create %v: %v", r, r.Err)
		}
	}
	waitFor(t, "the ACLs to reach the agent", func() bool { return a.cache.SecurityGeneration() != gen && len(a.cache.ACLs()) == 2 })
	produceConsume(t, bob, "shared", "granted")

	desc, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics("shared").Allow().AllowHosts().Operations(kadm.OpAny).
		ResourcePatternType(kadm.ACLPatternMatch))
	if err != nil || len(desc) != 1 || desc[0].Err != nil || len(desc[0].Described) != 2 {
		t.Fatalf("describe: %v %+v", err, desc)
	}
	gen = a.cache.SecurityGeneration()
	del, err := adm.DeleteACLs(ctx, kadm.NewACLs().Topics("shared").Allow("User:bob").AllowHosts().Operations(kadm.OpWrite).
		ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil || len(del) != 1 || del[0].Err != nil || len(del[0].Deleted) != 1 {
		t.Fatalf("delete: %v %+v", err, del)
	}
	waitFor(t, "the deletion to reach the agent", func() bool { return a.cache.SecurityGeneration() != gen && len(a.cache.ACLs()) == 1 })
	if err := bob.ProduceSync(ctx, &kgo.Record{Topic: "shared", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce after the Write ACL was deleted: %v", err)
	}
}

// SCRAM credentials set through AlterUserScramCredentials (KIP-554, salted by the client) log in;
// DescribeUserScramCredentials lists mechanisms and iterations; a deleted credential no longer logs
// in; a user without Alter on the cluster may not change them.
func TestSCRAMAdminAPIs(t *testing.T) {
	t.Parallel()
	_, a, admin, bob := securedPair(t)
	adm := kadm.NewClient(admin)
	ctx := testCtx(t)
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "carol-pw"}})
	if err != nil || altered["carol"].Err != nil {
		t.Fatalf("upsert: %v %+v", err, altered)
	}
	waitFor(t, "carol's credential", func() bool {
		_, ok := a.cache.ScramCredential("carol", auth.MechanismScramSHA512)
		return ok
	})
	carol := secClient(t, listenerAddr(t, a, ProtocolSASLPlaintext), nil, scram.Auth{User: "carol", Pass: "carol-pw"}.AsSha512Mechanism())
	if err := carol.Ping(ctx); err != nil {
		t.Fatalf("carol logs in: %v", err)
	}
	described, err := adm.DescribeUserSCRAMs(ctx, "carol", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if c := described["carol"]; c.Err != nil || len(c.CredInfos) != 1 || c.CredInfos[0].Iterations != 8192 || c.CredInfos[0].Mechanism != kadm.ScramSha512 {
		t.Errorf("describe carol: %+v", c)
	}
	if !errors.Is(described["nobody"].Err, kerr.ResourceNotFound) {
		t.Errorf("describe nobody: %v", described["nobody"].Err)
	}
	if res, err := kadm.NewClient(bob).AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil); !errors.Is(err, kerr.ClusterAuthorizationFailed) &&
		!errors.Is(res["carol"].Err, kerr.ClusterAuthorizationFailed) {
		t.Errorf("bob deletes carol: %v %+v", err, res)
	}
	if res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil); err != nil || res["carol"].Err != nil {
		t.Fatalf("delete carol: %v %+v", err, res)
	}
	waitFor(t, "carol's credential gone", func() bool {
		_, ok := a.cache.ScramCredential("carol", auth.MechanismScramSHA512)
		return !ok
	})
	again := secClient(t, listenerAddr(t, a, ProtocolSASLPlaintext), nil, scram.Auth{User: "carol", Pass: "carol-pw"}.AsSha512Mechanism())
	if err := again.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("carol after deletion: %v", err)
	}
}

// Client quotas set through AlterClientQuotas (KIP-546) are stored and described; an unknown key
// is refused; a user without AlterConfigs on the cluster may not set them.
func TestClientQuotaAdminAPIs(t *testing.T) {
	t.Parallel()
	_, a, admin, bob := securedPair(t)
	adm := kadm.NewClient(admin)
	ctx := testCtx(t)
	user := "bob"
	entity := kadm.ClientQuotaEntity{{Type: "user", Name: &user}}
	set := []kadm.AlterClientQuotaEntry{{Entity: entity, Ops: []kadm.AlterClientQuotaOp{{Key: auth.ProducerByteRate, Value: 1 << 20}}}}
	if res, err := kadm.NewClient(bob).AlterClientQuotas(ctx, set); err != nil || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob sets a quota: %v %+v", err, res)
	}
	if res, err := adm.AlterClientQuotas(ctx, set); err != nil || res[0].Err != nil {
		t.Fatalf("set: %v %+v", err, res)
	}
	bad := []kadm.AlterClientQuotaEntry{{Entity: entity, Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 10}}}}
	if res, err := adm.AlterClientQuotas(ctx, bad); err != nil || !errors.Is(res[0].Err, kerr.InvalidRequest) {
		t.Errorf("unknown key: %v %+v", err, res)
	}
	waitFor(t, "the quota to reach the agent", func() bool { return len(a.cache.Quotas()) == 1 })
	if q := a.cache.Quotas()[0]; q.Entity != (coord.QuotaEntity{User: coord.Named("bob")}) || q.Values[auth.ProducerByteRate] != 1<<20 {
		t.Errorf("stored %+v", q)
	}
	desc, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: &user}})
	if err != nil || len(desc) != 1 || len(desc[0].Values) != 1 || desc[0].Values[0].Value != 1<<20 {
		t.Fatalf("describe: %v %+v", err, desc)
	}
	if desc, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: 2}}); err != nil || len(desc) != 0 {
		t.Errorf("describe any client id: %v %+v", err, desc)
	}
}
