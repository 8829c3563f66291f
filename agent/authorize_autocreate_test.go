package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// With ACLs on, Metadata auto-creates a topic only for a client allowed Create on it (or on the
// cluster), as Kafka does: Describe alone gets TOPIC_AUTHORIZATION_FAILED and creates nothing; a
// request that does not ask for creation is answered UNKNOWN_TOPIC_OR_PARTITION as before.
func TestMetadataAutoCreateNeedsCreate(t *testing.T) {
	t.Parallel()
	tc, a, _, _ := securedPair(t, func(c *Config) { c.AutoCreateTopics = true })
	bobRC := bobConn(t, a, "bob", "bob-secret")
	bobP := auth.User("bob")
	grant(t, tc, a, auth.ACL{ResourceType: auth.ResourceTopic, PatternType: auth.PatternPrefixed, Name: "auto-", Principal: bobP,
		Operation: auth.OpDescribe})
	metadata := func(topic string, create bool) kmsg.MetadataResponseTopic {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		req.AllowAutoTopicCreation = create
		md := rt[*kmsg.MetadataResponse](t, bobRC, req, 9)
		if len(md.Topics) != 1 {
			t.Fatalf("metadata of %s: %d topics", topic, len(md.Topics))
		}
		return md.Topics[0]
	}
	if got := metadata("auto-1", true); got.ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("auto-create with Describe only: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := metadata("auto-1", false); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("metadata without auto-create: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(got.ErrorCode))
	}
	if _, ok := a.cache.Topic("auto-1"); ok {
		t.Fatal("auto-1 was created for a client without Create")
	}
	grant(t, tc, a, auth.ACL{ResourceType: auth.ResourceTopic, PatternType: auth.PatternPrefixed, Name: "auto-", Principal: bobP,
		Operation: auth.OpCreate})
	if got := metadata("auto-1", true); got.ErrorCode != 0 && got.ErrorCode != kerr.LeaderNotAvailable.Code {
		t.Errorf("auto-create with Create: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	waitFor(t, "auto-1 created", func() bool { _, ok := a.cache.Topic("auto-1"); return ok })
	// Create on the cluster is enough too, and Describe is still needed.
	grant(t, tc, a, auth.ACL{ResourceType: auth.ResourceCluster, Name: auth.ClusterName, Principal: bobP, Operation: auth.OpCreate},
		auth.ACL{ResourceType: auth.ResourceTopic, Name: "new-1", Principal: bobP, Operation: auth.OpDescribe})
	if got := metadata("other-1", true); got.ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("auto-create without Describe: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := metadata("new-1", true); got.ErrorCode != 0 && got.ErrorCode != kerr.LeaderNotAvailable.Code {
		t.Errorf("auto-create with Create on the cluster: %v", kerr.ErrorForCode(got.ErrorCode))
	}
}
