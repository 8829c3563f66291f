package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"maps"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// grant stores ACL bindings and waits until a sees them.
func grant(t *testing.T, tc *testCluster, a *Agent, acls ...auth.ACL) {
	t.Helper()
	gen := a.cache.SecurityGeneration()
	var bs []coord.ACLBinding
	for _, acl := range acls {
		if acl.Host == "" {
			acl.Host = auth.WildcardHost
		}
		if acl.Permission == 0 {
			acl.Permission = auth.PermissionAllow
		}
		if acl.PatternType == 0 {
			acl.PatternType = auth.PatternLiteral
		}
		if err := acl.Validate(); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, acl.Binding())
	}
	if err := tc.client().PutACLs(testCtx(t), bs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ACLs to reach the agent", func() bool { return a.cache.SecurityGeneration() != gen && len(a.cache.ACLs()) >= len(acls) })
}

// securedPair is an agent with a SASL_PLAINTEXT listener, an admin super user and a user bob
// without ACLs, and a client of each.
func securedPair(t *testing.T, opts ...func(*Config)) (tc *testCluster, a *Agent, admin, bob *kgo.Client) {
	t.Helper()
	f := newSecFixture(t)
	tc = newTestCluster(t)
	a = tc.agent("a1", append([]func(*Config){f.listeners([]string{"admin"}, ProtocolSASLPlaintext)}, opts...)...)
	addUser(t, tc, "admin", "admin-secret", a)
	addUser(t, tc, "bob", "bob-secret", a)
	addr := listenerAddr(t, a, ProtocolSASLPlaintext)
	admin = secClient(t, addr, nil, scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha256Mechanism())
	bob = secClient(t, addr, nil, scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism(), kgo.RequestRetries(0))
	return tc, a, admin, bob
}

// rt sends req at version v on an authenticated raw connection and returns its answer.
func rt[R kmsg.Response](t *testing.T, rc *rawConn, req kmsg.Request, v int16) R {
	t.Helper()
	return rc.roundTrip(req, v).(R)
}

// bobConn is a raw connection to a's SASL listener logged in as user.
func bobConn(t *testing.T, a *Agent, user, pass string) *rawConn {
	t.Helper()
	rc := dialRawAddr(t, listenerAddr(t, a, ProtocolSASLPlaintext))
	wantOK(t, "login", saslLogin(t, rc, scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), 2).ErrorCode)
	return rc
}

func request[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	resp, err := cl.Request(testCtx(t), req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

// A user without ACLs can touch no topic: produce, fetch, list offsets, delete records, create,
// delete, alter and describe refuse with TOPIC_AUTHORIZATION_FAILED, Metadata hides the topics,
// idempotent producers get no id; an ACL opens what it names, and a prefixed one what starts with it.
func TestTopicACLs(t *testing.T) {
	t.Parallel()
	tc, a, admin, bob := securedPair(t)
	bobRC := bobConn(t, a, "bob", "bob-secret")
	createTopic(t, admin, "secret", 1, nil)
	createTopic(t, admin, "bob-data", 1, nil)
	produceConsume(t, admin, "secret", "x")

	if err := bob.ProduceSync(testCtx(t), &kgo.Record{Topic: "secret", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	md := rt[*kmsg.MetadataResponse](t, bobRC, kmsg.NewPtrMetadataRequest(), 9)
	if len(md.Topics) != 0 {
		t.Errorf("metadata of all topics shows %d topics to a user without ACLs", len(md.Topics))
	}
	mreq := kmsg.NewPtrMetadataRequest()
	name := "secret"
	mreq.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	md = rt[*kmsg.MetadataResponse](t, bobRC, mreq, 9)
	if len(md.Topics) != 1 || md.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code || len(md.Topics[0].Partitions) != 0 {
		t.Errorf("metadata of secret: %+v", md.Topics)
	}

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	secretTopic, _ := a.cache.Topic("secret")
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "secret", TopicID: secretTopic.ID, Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}}}
	fetch.MaxBytes = 1 << 20
	fr := rt[*kmsg.FetchResponse](t, bobRC, fetch, 12)
	if len(fr.Topics) != 1 || fr.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code || len(fr.Topics[0].Partitions[0].RecordBatches) != 0 {
		t.Errorf("fetch: %+v", fr.Topics)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "secret", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1}}}}
	if r := rt[*kmsg.ListOffsetsResponse](t, bobRC, lo, 7); r.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("list offsets: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}
	dr := kmsg.NewPtrDeleteRecordsRequest()
	dr.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "secret", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: -1}}}}
	if r := rt[*kmsg.DeleteRecordsResponse](t, bobRC, dr, 2); r.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("delete records: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.TopicNames = []string{"secret"}
	dt.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: &name}}
	if r := rt[*kmsg.DeleteTopicsResponse](t, bobRC, dt, 5); r.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("delete topics: %v", kerr.ErrorForCode(r.Topics[0].ErrorCode))
	}
	if _, ok := a.cache.Topic("secret"); !ok {
		t.Fatal("bob deleted secret")
	}
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "bobs", NumPartitions: 1, ReplicationFactor: 1}}
	if r := rt[*kmsg.CreateTopicsResponse](t, bobRC, ct, 5); r.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("create topics: %v", kerr.ErrorForCode(r.Topics[0].ErrorCode))
	}
	cp := kmsg.NewPtrCreatePartitionsRequest()
	cp.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "secret", Count: 3}}
	if r := rt[*kmsg.CreatePartitionsResponse](t, bobRC, cp, 3); r.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("create partitions: %v", kerr.ErrorForCode(r.Topics[0].ErrorCode))
	}
	ia := kmsg.NewPtrIncrementalAlterConfigsRequest()
	v := "1000"
	ia.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "secret",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: &v}}}}
	if r := rt[*kmsg.IncrementalAlterConfigsResponse](t, bobRC, ia, 1); r.Resources[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("alter configs: %v", kerr.ErrorForCode(r.Resources[0].ErrorCode))
	}
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "secret"}}
	if r := rt[*kmsg.DescribeConfigsResponse](t, bobRC, dc, 4); r.Resources[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("describe configs: %v", kerr.ErrorForCode(r.Resources[0].ErrorCode))
	}
	if r := rt[*kmsg.InitProducerIDResponse](t, bobRC, kmsg.NewPtrInitProducerIDRequest(), 4); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("init producer id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := rt[*kmsg.DescribeClusterResponse](t, bobRC, kmsg.NewPtrDescribeClusterRequest(), 0); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("describe cluster: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	// Write and Read on the prefix bob-: bob produces and consumes there (idempotently: Write on
	// some topic grants InitProducerID), sees only those topics, and still not secret.
	bobP := auth.User("bob")
	grant(t, tc, a,
		auth.ACL{ResourceType: auth.ResourceTopic, PatternType: auth.PatternPrefixed, Name: "bob-", Principal: bobP, Operation: auth.OpWrite},
		auth.ACL{ResourceType: auth.ResourceTopic, PatternType: auth.PatternPrefixed, Name: "bob-", Principal: bobP, Operation: auth.OpRead},
		auth.ACL{ResourceType: auth.ResourceTopic, Name: "secret", Principal: bobP, Operation: auth.OpWrite, Permission: auth.PermissionDeny},
	)
	produceConsume(t, bob, "bob-data", "mine")
	md = rt[*kmsg.MetadataResponse](t, bobRC, kmsg.NewPtrMetadataRequest(), 9)
	if len(md.Topics) != 1 || *md.Topics[0].Topic != "bob-data" {
		t.Errorf("metadata shows bob %d topics, want bob-data alone", len(md.Topics))
	}
	if r := rt[*kmsg.InitProducerIDResponse](t, bobRC, kmsg.NewPtrInitProducerIDRequest(), 4); r.ErrorCode != 0 {
		t.Errorf("init producer id with Write on a prefix: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if err := bob.ProduceSync(testCtx(t), &kgo.Record{Topic: "secret", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce to secret after the grant: %v", err)
	}
}

// Group APIs need Read on the group to join or commit, Describe to look, Delete to delete; Read on
// the topic to commit its offsets.
func TestGroupACLs(t *testing.T) {
	t.Parallel()
	tc, a, admin, _ := securedPair(t)
	bobRC := bobConn(t, a, "bob", "bob-secret")
	createTopic(t, admin, "events", 1, nil)
	produceConsume(t, admin, "events", "x")
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "g1", -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "events", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	if r := request[*kmsg.OffsetCommitResponse](t, admin, commit); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("admin commit: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}

	if r := rt[*kmsg.OffsetCommitResponse](t, bobRC, commit, 8); r.Topics[0].Partitions[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("commit: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g1", "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if r := rt[*kmsg.JoinGroupResponse](t, bobRC, join, 7); r.ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("join: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorKeys = "g1", []string{"g1"}
	if r := rt[*kmsg.FindCoordinatorResponse](t, bobRC, fc, 4); r.Coordinators[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("find coordinator: %v", kerr.ErrorForCode(r.Coordinators[0].ErrorCode))
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = "g1"
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g1"}}
	if r := rt[*kmsg.OffsetFetchResponse](t, bobRC, of, 8); len(r.Groups) != 1 || r.Groups[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("offset fetch: %+v", r.Groups)
	}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"g1"}
	if r := rt[*kmsg.DescribeGroupsResponse](t, bobRC, dg, 5); r.Groups[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("describe groups: %v", kerr.ErrorForCode(r.Groups[0].ErrorCode))
	}
	if r := rt[*kmsg.ListGroupsResponse](t, bobRC, kmsg.NewPtrListGroupsRequest(), 4); len(r.Groups) != 0 {
		t.Errorf("list groups shows bob %d groups", len(r.Groups))
	}
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g1"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "events", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	if r := rt[*kmsg.OffsetDeleteResponse](t, bobRC, od, 0); r.ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("offset delete: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g1"}
	if r := rt[*kmsg.DeleteGroupsResponse](t, bobRC, del, 2); r.Groups[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("delete groups: %v", kerr.ErrorForCode(r.Groups[0].ErrorCode))
	}

	// Read on the group but not the topic: the commit is refused per topic.
	grant(t, tc, a, auth.ACL{ResourceType: auth.ResourceGroup, Name: "g1", Principal: auth.User("bob"), Operation: auth.OpRead})
	if r := rt[*kmsg.OffsetCommitResponse](t, bobRC, commit, 8); r.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("commit without topic Read: %v", kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}
	if r := rt[*kmsg.FindCoordinatorResponse](t, bobRC, fc, 4); r.Coordinators[0].ErrorCode != 0 {
		t.Errorf("find coordinator with Read (implies Describe): %v", kerr.ErrorForCode(r.Coordinators[0].ErrorCode))
	}
	if r := rt[*kmsg.OffsetFetchResponse](t, bobRC, of, 8); len(r.Groups) != 1 || r.Groups[0].ErrorCode != 0 || len(r.Groups[0].Topics) != 0 {
		t.Errorf("offset fetch hides topics bob may not describe: %+v", r.Groups)
	}
}

// allow.everyone.if.no.acl.found opens what no ACL names, and only that.
func TestAllowEveryoneIfNoACLFound(t *testing.T) {
	t.Parallel()
	tc, a, admin, bob := securedPair(t, func(c *Config) { c.Security.AllowEveryoneIfNoACLFound = true })
	createTopic(t, admin, "open", 1, nil)
	createTopic(t, admin, "closed", 1, nil)
	grant(t, tc, a, auth.ACL{ResourceType: auth.ResourceTopic, Name: "closed", Principal: auth.User("admin"), Operation: auth.OpAll})
	produceConsume(t, bob, "open", "anyone")
	if err := bob.ProduceSync(testCtx(t), &kgo.Record{Topic: "closed", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce to a topic with ACLs: %v", err)
	}
}

// The principal of an SSL client is its certificate's subject: an ACL on it opens a topic, another
// certificate of the same CA gets nothing.
func TestSSLPrincipalACLs(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	a := tc.agent("a1", f.listeners([]string{"CN=admin"}, ProtocolSSL), func(c *Config) { c.Security.TLSClientCAFile = f.ca.CertFile })
	addr := listenerAddr(t, a, ProtocolSSL)
	certClient := func(cn string) *kgo.Client {
		files := f.ca.Client(t, pkix.Name{CommonName: cn, Organization: []string{"Example"}})
		cfg := f.clientTLS(t)
		pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
		return secClient(t, addr, cfg, nil, kgo.RequestRetries(0))
	}
	admin := secClient(t, addr, func() *tls.Config {
		files := f.ca.Client(t, pkix.Name{CommonName: "admin"})
		cfg := f.clientTLS(t)
		pair, _ := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		cfg.Certificates = []tls.Certificate{pair}
		return cfg
	}(), nil)
	createTopic(t, admin, "certs", 1, nil)
	grant(t, tc, a, auth.ACL{ResourceType: auth.ResourceTopic, Name: "certs", Principal: auth.User("CN=alice,O=Example"), Operation: auth.OpAll})
	produceConsume(t, certClient("alice"), "certs", "by certificate")
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	if err := certClient("mallory").ProduceSync(ctx, &kgo.Record{Topic: "certs", Value: []byte("v")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce by another certificate: %v", err)
	}
}

// Every API the agent serves is one guard authorizes: a new API must be added there.
func TestEveryAPIGuarded(t *testing.T) {
	t.Parallel()
	all := maps.Clone(apis)
	maps.Copy(all, txnAPIs)
	for key := range all {
		if !guarded[key] {
			t.Errorf("%s is served but not authorized (authorize.go)", kmsg.NameForKey(key))
		}
	}
}
