package agent

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// authorizeGroupRequest authorizes the consumer group APIs as Kafka does: Read on the group to be a
// member or commit, Describe to look, Delete to delete; Read on a topic to commit or delete its
// offsets, Describe to fetch them.
func (a *Agent) authorizeGroupRequest(c client, req kmsg.Request) (kmsg.Response, func(kmsg.Response)) {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if !a.allowedGroup(c, auth.OpRead, r.Group) {
			resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode, resp.Generation = groupDenied, -1
			return resp, nil
		}
	case *kmsg.SyncGroupRequest:
		if !a.allowedGroup(c, auth.OpRead, r.Group) {
			resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = groupDenied
			return resp, nil
		}
	case *kmsg.HeartbeatRequest:
		if !a.allowedGroup(c, auth.OpRead, r.Group) {
			resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = groupDenied
			return resp, nil
		}
	case *kmsg.LeaveGroupRequest:
		if !a.allowedGroup(c, auth.OpRead, r.Group) {
			resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
			resp.ErrorCode = groupDenied
			return resp, nil
		}
	case *kmsg.OffsetCommitRequest:
		return a.authorizeOffsetCommit(c, r)
	case *kmsg.OffsetFetchRequest:
		return nil, a.authorizeOffsetFetch(c, r)
	case *kmsg.OffsetDeleteRequest:
		return a.authorizeOffsetDelete(c, r)
	case *kmsg.FindCoordinatorRequest:
		return nil, a.authorizeFindCoordinator(c, r)
	case *kmsg.DescribeGroupsRequest:
		return nil, func(resp kmsg.Response) {
			dr := resp.(*kmsg.DescribeGroupsResponse)
			for i := range dr.Groups {
				g := &dr.Groups[i]
				if !a.allowedGroup(c, auth.OpDescribe, g.Group) {
					denied := kmsg.NewDescribeGroupsResponseGroup()
					denied.Group, denied.ErrorCode = g.Group, groupDenied
					*g = denied
				}
			}
		}
	case *kmsg.ListGroupsRequest:
		if a.allowedCluster(c, auth.OpDescribe) {
			return nil, nil
		}
		return nil, func(resp kmsg.Response) {
			lr := resp.(*kmsg.ListGroupsResponse)
			keep := lr.Groups[:0]
			for _, g := range lr.Groups {
				if a.allowedGroup(c, auth.OpDescribe, g.Group) {
					keep = append(keep, g)
				}
			}
			lr.Groups = keep
		}
	case *kmsg.DeleteGroupsRequest:
		return nil, refuseDenied(&r.Groups, func(g string) bool { return a.allowedGroup(c, auth.OpDelete, g) },
			func(resp kmsg.Response, g string) {
				dr := resp.(*kmsg.DeleteGroupsResponse)
				rg := kmsg.NewDeleteGroupsResponseGroup()
				rg.Group, rg.ErrorCode = g, groupDenied
				dr.Groups = append(dr.Groups, rg)
			})
	}
	return nil, nil
}

func (a *Agent) authorizeOffsetCommit(c client, r *kmsg.OffsetCommitRequest) (kmsg.Response, func(kmsg.Response)) {
	answer := func(topics []kmsg.OffsetCommitRequestTopic, code int16, resp *kmsg.OffsetCommitResponse) {
		for _, t := range topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if !a.allowedGroup(c, auth.OpRead, r.Group) {
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		answer(r.Topics, groupDenied, resp)
		return resp, nil
	}
	return nil, refuseDenied(&r.Topics, func(t kmsg.OffsetCommitRequestTopic) bool { return a.allowedTopic(c, auth.OpRead, t.Topic) },
		func(resp kmsg.Response, t kmsg.OffsetCommitRequestTopic) {
			answer([]kmsg.OffsetCommitRequestTopic{t}, topicDenied, resp.(*kmsg.OffsetCommitResponse))
		})
}

// authorizeOffsetFetch: Describe on the group, or GROUP_AUTHORIZATION_FAILED; the offsets of topics
// the client may not Describe are left out of an answer about all of them and refused with
// TOPIC_AUTHORIZATION_FAILED when asked for by name.
func (a *Agent) authorizeOffsetFetch(c client, r *kmsg.OffsetFetchRequest) func(kmsg.Response) {
	filter := func(topics []kmsg.OffsetFetchResponseTopic, all bool) []kmsg.OffsetFetchResponseTopic {
		keep := topics[:0]
		for _, t := range topics {
			if a.allowedTopic(c, auth.OpDescribe, t.Topic) {
				keep = append(keep, t)
				continue
			}
			if all {
				continue
			}
			for i := range t.Partitions {
				t.Partitions[i].ErrorCode, t.Partitions[i].Offset, t.Partitions[i].Metadata = topicDenied, -1, nil
			}
			keep = append(keep, t)
		}
		return keep
	}
	filterGroup := func(topics []kmsg.OffsetFetchResponseGroupTopic, all bool) []kmsg.OffsetFetchResponseGroupTopic {
		keep := topics[:0]
		for _, t := range topics {
			if a.allowedTopic(c, auth.OpDescribe, t.Topic) {
				keep = append(keep, t)
				continue
			}
			if all {
				continue
			}
			for i := range t.Partitions {
				t.Partitions[i].ErrorCode, t.Partitions[i].Offset, t.Partitions[i].Metadata = topicDenied, -1, nil
			}
			keep = append(keep, t)
		}
		return keep
	}
	if r.Version < 8 {
		all := r.Topics == nil
		groupOK := a.allowedGroup(c, auth.OpDescribe, r.Group)
		return func(resp kmsg.Response) {
			or := resp.(*kmsg.OffsetFetchResponse)
			if !groupOK {
				or.ErrorCode = groupDenied
				for i := range or.Topics {
					for j := range or.Topics[i].Partitions {
						p := &or.Topics[i].Partitions[j]
						p.ErrorCode, p.Offset, p.Metadata = groupDenied, -1, nil
					}
				}
				if r.Version >= 2 {
					or.Topics = nil
				}
				return
			}
			or.Topics = filter(or.Topics, all)
		}
	}
	all := map[string]bool{}
	for _, g := range r.Groups {
		all[g.Group] = g.Topics == nil
	}
	return func(resp kmsg.Response) {
		or := resp.(*kmsg.OffsetFetchResponse)
		for i := range or.Groups {
			g := &or.Groups[i]
			if !a.allowedGroup(c, auth.OpDescribe, g.Group) {
				g.ErrorCode, g.Topics = groupDenied, nil
				continue
			}
			g.Topics = filterGroup(g.Topics, all[g.Group])
		}
	}
}

func (a *Agent) authorizeOffsetDelete(c client, r *kmsg.OffsetDeleteRequest) (kmsg.Response, func(kmsg.Response)) {
	if !a.allowedGroup(c, auth.OpDelete, r.Group) {
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = groupDenied
		return resp, nil
	}
	return nil, refuseDenied(&r.Topics, func(t kmsg.OffsetDeleteRequestTopic) bool { return a.allowedTopic(c, auth.OpRead, t.Topic) },
		func(resp kmsg.Response, t kmsg.OffsetDeleteRequestTopic) {
			dr := resp.(*kmsg.OffsetDeleteResponse)
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetDeleteResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p.Partition, topicDenied
				rt.Partitions = append(rt.Partitions, sp)
			}
			dr.Topics = append(dr.Topics, rt)
		})
}

// authorizeFindCoordinator: Describe on the group (or transactional id) whose coordinator is asked.
func (a *Agent) authorizeFindCoordinator(c client, r *kmsg.FindCoordinatorRequest) func(kmsg.Response) {
	rt, code := auth.ResourceGroup, groupDenied
	if r.CoordinatorType == coordinatorTypeTxn {
		rt, code = auth.ResourceTransactionalID, kerrTxnDenied
	}
	ok := func(key string) bool { return a.allowed(c, auth.OpDescribe, rt, key) }
	return func(resp kmsg.Response) {
		fr := resp.(*kmsg.FindCoordinatorResponse)
		if r.Version < 4 {
			if !ok(r.CoordinatorKey) {
				fr.ErrorCode, fr.NodeID, fr.Host, fr.Port = code, -1, "", -1
			}
			return
		}
		for i := range fr.Coordinators {
			co := &fr.Coordinators[i]
			if !ok(co.Key) {
				co.ErrorCode, co.NodeID, co.Host, co.Port, co.ErrorMessage = code, -1, "", -1, nil
			}
		}
	}
}
