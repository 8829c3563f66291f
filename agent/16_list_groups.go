package agent

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups: v0-4
//
// The groups this agent coordinates (clients ask every broker and merge), in every state, including
// groups that only hold committed offsets. A shard it leads that is still loading is waited for; past
// a few seconds the answer is COORDINATOR_LOAD_IN_PROGRESS, which clients retry, rather than a list
// missing that shard's groups.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: flexible versions
// * v4: StatesFilter and GroupState (KIP-518); states match case-insensitively, as in Kafka

func (a *Agent) handleListGroups(ctx context.Context, c client, req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if !a.groups.loaded(ctx) {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	}
	for _, sh := range a.groups.loadedShards() {
		for _, g := range sh.list() {
			lg := kmsg.NewListGroupsResponseGroup()
			g.mu.Lock()
			gone := g.gone.Load()
			lg.Group, lg.ProtocolType, lg.GroupState = g.name, g.protocolType, g.state.String()
			g.mu.Unlock()
			if gone || (len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(s string) bool {
				return strings.EqualFold(s, lg.GroupState)
			})) {
				continue
			}
			resp.Groups = append(resp.Groups, lg)
		}
	}
	slices.SortFunc(resp.Groups, func(x, y kmsg.ListGroupsResponseGroup) int { return strings.Compare(x.Group, y.Group) })
	return resp
}

// loaded waits, for at most loadWait, until every shard this agent leads has finished loading.
func (gc *groupCoordinator) loaded(ctx context.Context) bool {
	gc.sweep() // a shard led since the last sweep starts loading now
	gc.mu.Lock()
	var loading []*shard
	for _, sh := range gc.shards {
		loading = append(loading, sh)
	}
	gc.mu.Unlock()
	wait := time.NewTimer(gc.cfg.loadWait)
	defer wait.Stop()
	for _, sh := range loading {
		select {
		case <-sh.ready:
		case <-wait.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}
