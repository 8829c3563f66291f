package agent

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// Authorization on the Kafka path (docs/INTERNALS.md, "Authorization on the Kafka path"): before a
// request reaches its handler, guard asks the authorizer about every resource it names, with
// Kafka's operation for that API. What the client may not touch is taken out of the request and
// answered with Kafka's AUTHORIZATION_FAILED error in the handler's answer; a request the client may
// not make at all is answered without its handler. The handlers themselves know nothing of ACLs.

// allowed tells whether c may do op on the resource; always, while authorization is off.
func (a *Agent) allowed(c client, op auth.Operation, rt auth.ResourceType, name string) bool {
	if a.sec.authz == nil {
		return true
	}
	return a.sec.authz.Authorize(auth.Request{Principal: c.sec.who(), Host: c.sec.hostAddr(), Operation: op, Resource: rt, Name: name})
}

func (a *Agent) allowedTopic(c client, op auth.Operation, topic string) bool {
	return a.allowed(c, op, auth.ResourceTopic, topic)
}

func (a *Agent) allowedCluster(c client, op auth.Operation) bool {
	return a.allowed(c, op, auth.ResourceCluster, auth.ClusterName)
}

func (a *Agent) allowedGroup(c client, op auth.Operation, group string) bool {
	return a.allowed(c, op, auth.ResourceGroup, group)
}

// topicName is the name of a topic a request names by name or (newer versions) by id; "" for an
// unknown id (the handler answers UNKNOWN_TOPIC_ID).
func (a *Agent) topicName(name string, id [16]byte) string {
	if name != "" {
		return name
	}
	if t, ok := a.cache.TopicByID(coord.TopicID(id)); ok {
		return t.Name
	}
	return ""
}

// guard authorizes req for c. It returns either a complete answer (the handler is not called) or a
// function, possibly nil, that completes the handler's answer: the refused parts' errors, and the
// quota's throttle (quota.go).
func (a *Agent) guard(c client, req kmsg.Request) (deny kmsg.Response, post func(kmsg.Response)) {
	if a.sec.authz == nil {
		return nil, a.throttle(c, req)
	}
	deny, post = a.authorizeRequest(c, req)
	if deny != nil {
		return deny, nil
	}
	if q := a.throttle(c, req); q != nil {
		if post == nil {
			return nil, q
		}
		p := post
		post = func(r kmsg.Response) { p(r); q(r) }
	}
	return nil, post
}

// withPost completes wait's answer with post.
func withPost(wait func() kmsg.Response, post func(kmsg.Response)) func() kmsg.Response {
	if post == nil {
		return wait
	}
	return func() kmsg.Response {
		r := wait()
		if r != nil {
			post(r)
		}
		return r
	}
}

var (
	topicDenied   = kerr.TopicAuthorizationFailed.Code
	groupDenied   = kerr.GroupAuthorizationFailed.Code
	clusterDenied = kerr.ClusterAuthorizationFailed.Code
	kerrTxnDenied = kerr.TransactionalIDAuthorizationFailed.Code
)

func (a *Agent) authorizeRequest(c client, req kmsg.Request) (kmsg.Response, func(kmsg.Response)) {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		if post, denied := a.authorizeTransactionalProduce(c, r); denied {
			return nil, post
		}
		return nil, a.authorizeProduce(c, r)
	case *kmsg.FetchRequest:
		return nil, a.authorizeFetch(c, r)
	case *kmsg.ListOffsetsRequest:
		return nil, a.authorizeListOffsets(c, r)
	case *kmsg.OffsetForLeaderEpochRequest:
		return nil, a.authorizeOffsetForLeaderEpoch(c, r)
	case *kmsg.MetadataRequest:
		return nil, a.authorizeMetadata(c, r)
	case *kmsg.CreateTopicsRequest:
		return nil, a.authorizeCreateTopics(c, r)
	case *kmsg.DeleteTopicsRequest:
		return nil, a.authorizeDeleteTopics(c, r)
	case *kmsg.DeleteRecordsRequest:
		return nil, a.authorizeDeleteRecords(c, r)
	case *kmsg.DescribeProducersRequest:
		return nil, a.authorizeDescribeProducers(c, r)
	case *kmsg.CreatePartitionsRequest:
		return nil, a.authorizeCreatePartitions(c, r)
	case *kmsg.DescribeConfigsRequest:
		return nil, a.authorizeDescribeConfigs(c, r)
	case *kmsg.IncrementalAlterConfigsRequest:
		return nil, a.authorizeAlterConfigs(c, r)
	case *kmsg.AlterConfigsRequest:
		return nil, a.authorizeLegacyAlterConfigs(c, r)
	case *kmsg.DescribeClusterRequest:
		if !a.allowedCluster(c, auth.OpDescribe) {
			resp := r.ResponseKind().(*kmsg.DescribeClusterResponse)
			resp.ErrorCode = clusterDenied
			return resp, nil
		}
	case *kmsg.InitProducerIDRequest:
		if deny := a.authorizeInitProducerID(c, r); deny != nil {
			return deny, nil
		}
	default:
		if deny, post, ok := a.authorizeTxnRequest(c, req); ok { // authorize_txn.go
			return deny, post
		}
		return a.authorizeGroupRequest(c, req)
	}
	return nil, nil
}

func (a *Agent) authorizeProduce(c client, r *kmsg.ProduceRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.ProduceRequestTopic) bool { return a.allowedTopic(c, auth.OpWrite, t.Topic) },
		refuseProduceTopic(topicDenied))
}

// refuseProduceTopic answers every partition of a refused produce topic with code.
func refuseProduceTopic(code int16) func(kmsg.Response, kmsg.ProduceRequestTopic) {
	return func(resp kmsg.Response, t kmsg.ProduceRequestTopic) {
		pr := resp.(*kmsg.ProduceResponse)
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.BaseOffset = p.Partition, code, -1
			rt.Partitions = append(rt.Partitions, sp)
		}
		pr.Topics = append(pr.Topics, rt)
	}
}

func (a *Agent) authorizeFetch(c client, r *kmsg.FetchRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.FetchRequestTopic) bool {
		name := a.topicName(t.Topic, t.TopicID)
		return name == "" || a.allowedTopic(c, auth.OpRead, name)
	}, func(resp kmsg.Response, t kmsg.FetchRequestTopic) {
		fr := resp.(*kmsg.FetchResponse)
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = p.Partition, topicDenied, -1, -1, -1
			rt.Partitions = append(rt.Partitions, sp)
		}
		fr.Topics = append(fr.Topics, rt)
	})
}

func (a *Agent) authorizeListOffsets(c client, r *kmsg.ListOffsetsRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.ListOffsetsRequestTopic) bool { return a.allowedTopic(c, auth.OpDescribe, t.Topic) },
		func(resp kmsg.Response, t kmsg.ListOffsetsRequestTopic) {
			lr := resp.(*kmsg.ListOffsetsResponse)
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.Offset, sp.Timestamp = p.Partition, topicDenied, -1, -1
				rt.Partitions = append(rt.Partitions, sp)
			}
			lr.Topics = append(lr.Topics, rt)
		})
}

func (a *Agent) authorizeOffsetForLeaderEpoch(c client, r *kmsg.OffsetForLeaderEpochRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.OffsetForLeaderEpochRequestTopic) bool { return a.allowedTopic(c, auth.OpDescribe, t.Topic) },
		func(resp kmsg.Response, t kmsg.OffsetForLeaderEpochRequestTopic) {
			or := resp.(*kmsg.OffsetForLeaderEpochResponse)
			rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.LeaderEpoch, sp.EndOffset = p.Partition, topicDenied, -1, -1
				rt.Partitions = append(rt.Partitions, sp)
			}
			or.Topics = append(or.Topics, rt)
		})
}

// authorizeMetadata hides topics the client may not Describe, as Kafka does: left out of an answer
// about all topics, TOPIC_AUTHORIZATION_FAILED (without partitions) for one asked by name, which is
// then never auto-created. A topic that does not exist, asked for by a request that would auto-create
// it, also needs Create on the cluster or on the topic (Kafka's KafkaApis does the same), else it is
// TOPIC_AUTHORIZATION_FAILED and not created.
func (a *Agent) authorizeMetadata(c client, r *kmsg.MetadataRequest) func(kmsg.Response) {
	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	autoCreate := a.cfg.AutoCreateTopics && (r.Version < 4 || r.AllowAutoTopicCreation)
	mayCreate := func(name string) bool {
		if _, ok := a.cache.Topic(name); ok || !autoCreate {
			return true // nothing to create
		}
		return a.allowedCluster(c, auth.OpCreate) || a.allowedTopic(c, auth.OpCreate, name)
	}
	var denied []kmsg.MetadataRequestTopic
	if !all {
		keep := r.Topics[:0]
		for _, t := range r.Topics {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			if name = a.topicName(name, t.TopicID); name == "" || a.allowedTopic(c, auth.OpDescribe, name) && (t.Topic == nil || mayCreate(name)) {
				keep = append(keep, t)
			} else {
				denied = append(denied, t)
			}
		}
		r.Topics = keep
		if len(keep) == 0 && r.Version > 0 {
			r.Topics = []kmsg.MetadataRequestTopic{} // none, not all
		}
	}
	return func(resp kmsg.Response) {
		mr := resp.(*kmsg.MetadataResponse)
		if all {
			keep := mr.Topics[:0]
			for _, t := range mr.Topics {
				if t.Topic != nil && a.allowedTopic(c, auth.OpDescribe, *t.Topic) {
					keep = append(keep, t)
				}
			}
			mr.Topics = keep
			return
		}
		for _, t := range denied {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, topicDenied
			mr.Topics = append(mr.Topics, rt)
		}
	}
}

// authorizeCreateTopics needs Create on the cluster or on the topic.
func (a *Agent) authorizeCreateTopics(c client, r *kmsg.CreateTopicsRequest) func(kmsg.Response) {
	if a.allowedCluster(c, auth.OpCreate) {
		return nil
	}
	return refuseDenied(&r.Topics, func(t kmsg.CreateTopicsRequestTopic) bool {
		return a.allowedTopic(c, auth.OpCreate, t.Topic)
	}, func(resp kmsg.Response, t kmsg.CreateTopicsRequestTopic) {
		cr := resp.(*kmsg.CreateTopicsResponse)
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic, rt.ErrorCode, rt.NumPartitions, rt.ReplicationFactor = t.Topic, topicDenied, -1, -1
		cr.Topics = append(cr.Topics, rt)
	})
}

func (a *Agent) authorizeDeleteTopics(c client, r *kmsg.DeleteTopicsRequest) func(kmsg.Response) {
	type refused struct {
		name *string
		id   [16]byte
	}
	var denied []refused
	if r.Version < 6 {
		keep := r.TopicNames[:0]
		for _, n := range r.TopicNames {
			if a.allowedTopic(c, auth.OpDelete, n) {
				keep = append(keep, n)
			} else {
				denied = append(denied, refused{name: &n})
			}
		}
		r.TopicNames = keep
	} else {
		keep := r.Topics[:0]
		for _, t := range r.Topics {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			if name = a.topicName(name, t.TopicID); name == "" || a.allowedTopic(c, auth.OpDelete, name) {
				keep = append(keep, t)
			} else {
				denied = append(denied, refused{name: t.Topic, id: t.TopicID})
			}
		}
		r.Topics = keep
	}
	if len(denied) == 0 {
		return nil
	}
	return func(resp kmsg.Response) {
		dr := resp.(*kmsg.DeleteTopicsResponse)
		for _, d := range denied {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID, rt.ErrorCode = d.name, d.id, topicDenied
			dr.Topics = append(dr.Topics, rt)
		}
	}
}

func (a *Agent) authorizeDeleteRecords(c client, r *kmsg.DeleteRecordsRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.DeleteRecordsRequestTopic) bool { return a.allowedTopic(c, auth.OpDelete, t.Topic) },
		func(resp kmsg.Response, t kmsg.DeleteRecordsRequestTopic) {
			dr := resp.(*kmsg.DeleteRecordsResponse)
			rt := kmsg.NewDeleteRecordsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewDeleteRecordsResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.LowWatermark = p.Partition, topicDenied, -1
				rt.Partitions = append(rt.Partitions, sp)
			}
			dr.Topics = append(dr.Topics, rt)
		})
}

func (a *Agent) authorizeCreatePartitions(c client, r *kmsg.CreatePartitionsRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.CreatePartitionsRequestTopic) bool {
		return a.allowedTopic(c, auth.OpAlter, t.Topic)
	}, func(resp kmsg.Response, t kmsg.CreatePartitionsRequestTopic) {
		cr := resp.(*kmsg.CreatePartitionsResponse)
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic, rt.ErrorCode = t.Topic, topicDenied
		cr.Topics = append(cr.Topics, rt)
	})
}

// configResource is the ACL resource of a config resource: a topic, or the cluster for a broker or
// its loggers; its refusal's error code.
func configResource(typ kmsg.ConfigResourceType, name string) (auth.ResourceType, string, int16) {
	if typ == kmsg.ConfigResourceTypeTopic {
		return auth.ResourceTopic, name, topicDenied
	}
	return auth.ResourceCluster, auth.ClusterName, clusterDenied
}

func (a *Agent) authorizeDescribeConfigs(c client, r *kmsg.DescribeConfigsRequest) func(kmsg.Response) {
	return authorizeConfigResources(a, c, auth.OpDescribeConfigs, &r.Resources,
		func(res kmsg.DescribeConfigsRequestResource) (kmsg.ConfigResourceType, string) {
			return res.ResourceType, res.ResourceName
		},
		func(resp kmsg.Response, typ kmsg.ConfigResourceType, name string, code int16) {
			dr := resp.(*kmsg.DescribeConfigsResponse)
			rr := kmsg.NewDescribeConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = typ, name, code
			dr.Resources = append(dr.Resources, rr)
		})
}

func (a *Agent) authorizeAlterConfigs(c client, r *kmsg.IncrementalAlterConfigsRequest) func(kmsg.Response) {
	return authorizeConfigResources(a, c, auth.OpAlterConfigs, &r.Resources,
		func(res kmsg.IncrementalAlterConfigsRequestResource) (kmsg.ConfigResourceType, string) {
			return res.ResourceType, res.ResourceName
		},
		func(resp kmsg.Response, typ kmsg.ConfigResourceType, name string, code int16) {
			ar := resp.(*kmsg.IncrementalAlterConfigsResponse)
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = typ, name, code
			ar.Resources = append(ar.Resources, rr)
		})
}

func (a *Agent) authorizeLegacyAlterConfigs(c client, r *kmsg.AlterConfigsRequest) func(kmsg.Response) {
	return authorizeConfigResources(a, c, auth.OpAlterConfigs, &r.Resources,
		func(res kmsg.AlterConfigsRequestResource) (kmsg.ConfigResourceType, string) {
			return res.ResourceType, res.ResourceName
		},
		func(resp kmsg.Response, typ kmsg.ConfigResourceType, name string, code int16) {
			ar := resp.(*kmsg.AlterConfigsResponse)
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = typ, name, code
			ar.Resources = append(ar.Resources, rr)
		})
}

// authorizeConfigResources keeps in *resources the config resources (named by id) c may op on, and
// returns what answers each of the others with its refusal (through refuse) once the request is
// handled; nil when none was refused. The three config APIs differ only in their types.
func authorizeConfigResources[R any](a *Agent, c client, op auth.Operation, resources *[]R,
	id func(R) (kmsg.ConfigResourceType, string),
	refuse func(resp kmsg.Response, typ kmsg.ConfigResourceType, name string, code int16)) func(kmsg.Response) {
	return refuseDenied(resources, func(res R) bool {
		rt, name, _ := configResource(id(res))
		return a.allowed(c, op, rt, name)
	}, func(resp kmsg.Response, res R) {
		typ, name := id(res)
		_, _, code := configResource(typ, name)
		refuse(resp, typ, name, code)
	})
}

// guarded lists the APIs guard knows: every API the agent serves must be here (a test checks), so
// that a new API is not served unchecked. ApiVersions and SASL need no authorization.
var guarded = map[int16]bool{}

func init() {
	for _, k := range []kmsg.Key{kmsg.Produce, kmsg.Fetch, kmsg.ListOffsets, kmsg.Metadata, kmsg.ApiVersions, kmsg.CreateTopics,
		kmsg.DeleteTopics, kmsg.InitProducerID, kmsg.DescribeConfigs, kmsg.CreatePartitions, kmsg.IncrementalAlterConfigs,
		kmsg.AlterConfigs, kmsg.DescribeCluster, kmsg.OffsetCommit, kmsg.OffsetFetch, kmsg.FindCoordinator, kmsg.JoinGroup,
		kmsg.Heartbeat, kmsg.LeaveGroup, kmsg.SyncGroup, kmsg.DescribeGroups, kmsg.ListGroups, kmsg.DeleteGroups,
		kmsg.OffsetDelete, kmsg.OffsetForLeaderEpoch, kmsg.DeleteRecords, kmsg.SASLHandshake, kmsg.SASLAuthenticate,
		kmsg.CreateACLs, kmsg.DescribeACLs, kmsg.DeleteACLs, kmsg.DescribeUserSCRAMCredentials, kmsg.AlterUserSCRAMCredentials,
		kmsg.DescribeClientQuotas, kmsg.AlterClientQuotas, kmsg.DescribeProducers,
		// the transaction APIs (txnAPIs), served with Config.Transactions (authorize_txn.go)
		kmsg.AddPartitionsToTxn, kmsg.AddOffsetsToTxn, kmsg.EndTxn, kmsg.TxnOffsetCommit, kmsg.DescribeTransactions,
		kmsg.ListTransactions} {
		guarded[int16(k)] = true
	}
}

// refuseDenied keeps in *items those allowed passes and returns what answers each of the others with
// its refusal (through refuse) once the request is handled; nil when none was refused. Kafka answers a
// refused topic, group or resource in place; the handler never sees it.
func refuseDenied[T any](items *[]T, allowed func(T) bool, refuse func(kmsg.Response, T)) func(kmsg.Response) {
	var denied []T
	keep := (*items)[:0]
	for _, it := range *items {
		if allowed(it) {
			keep = append(keep, it)
		} else {
			denied = append(denied, it)
		}
	}
	*items = keep
	if len(denied) == 0 {
		return nil
	}
	return func(resp kmsg.Response) {
		for _, it := range denied {
			refuse(resp, it)
		}
	}
}
