package group

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// fakeClock runs timers when the test advances it, in deadline order, on the test's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		stopped := !t.done
		t.done = true
		return stopped
	}
}

// advance moves time forward by d, firing every timer due, including those the callbacks set.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.done = true
		c.now = next.at
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// groupHarness drives one group's state machine directly, with a fake clock and store.
type groupHarness struct {
	t      *testing.T
	clock  *fakeClock
	g      *group
	writes []coord.GroupWrite
	fail   error // the next writes fail with this
	lost   int
}

func newGroupHarness(t *testing.T) *groupHarness {
	h := &groupHarness{t: t, clock: newFakeClock()}
	cfg := DefaultConfig()
	h.g = newGroup(h.env(&cfg), "g")
	return h
}

func (h *groupHarness) env(cfg *Config) *groupEnv {
	return &groupEnv{cfg: cfg, clock: h.clock, log: testLogger(h.t),
		write: func(_ *group, w coord.GroupWrite) error {
			if h.fail != nil {
				return h.fail
			}
			h.writes = append(h.writes, w)
			return nil
		},
		lost: func(error) { h.lost++ }}
}

// lastMeta is the group's metadata as last persisted.
func (h *groupHarness) lastMeta() *coord.GroupMeta {
	h.t.Helper()
	for i := len(h.writes) - 1; i >= 0; i-- {
		if h.writes[i].Meta != nil {
			return h.writes[i].Meta
		}
	}
	h.t.Fatal("no metadata persisted")
	return nil
}

const (
	sessionMs   = 10_000
	rebalanceMs = 30_000
)

func joinReq(version int16, memberID string, instance *string, protocols ...string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version, req.Group, req.MemberID, req.InstanceID = version, "g", memberID, instance
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = sessionMs, rebalanceMs
	req.ProtocolType = "consumer"
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	for _, p := range protocols {
		req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: []byte(p + "-meta")})
	}
	return req
}

// join sends a join; a parked join is returned as its waiter.
func (h *groupHarness) join(req *kmsg.JoinGroupRequest) (*kmsg.JoinGroupResponse, waiter) {
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	resp, w := h.g.join(req, Client{ID: "client", Remote: "10.0.0.1:5000"})
	if resp == nil {
		return nil, w
	}
	return resp.(*kmsg.JoinGroupResponse), nil
}

// newMember joins a dynamic member the KIP-394 way and returns its parked join.
func (h *groupHarness) newMember() (string, waiter) {
	h.t.Helper()
	resp, _ := h.join(joinReq(9, "", nil))
	if resp == nil || resp.ErrorCode != kerr.MemberIDRequired.Code {
		h.t.Fatalf("first join: %+v, want MEMBER_ID_REQUIRED", resp)
	}
	_, w := h.join(joinReq(9, resp.MemberID, nil))
	if w == nil {
		h.t.Fatal("rejoin with the member id was not parked")
	}
	return resp.MemberID, w
}

func (h *groupHarness) sync(memberID string, gen int32, assign map[string]string) (*kmsg.SyncGroupResponse, waiter) {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version, req.Group, req.MemberID, req.Generation = 5, "g", memberID, gen
	for m, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(a)})
	}
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	resp, w := h.g.sync(req)
	if resp == nil {
		return nil, w
	}
	return resp.(*kmsg.SyncGroupResponse), nil
}

func (h *groupHarness) heartbeat(memberID string, gen int32, instance *string) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version, req.Group, req.MemberID, req.Generation, req.InstanceID = 4, "g", memberID, gen, instance
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	return h.g.heartbeat(req).(*kmsg.HeartbeatResponse).ErrorCode
}

func (h *groupHarness) state() groupState {
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	return h.g.state
}

// answered takes the answer a waiter already holds.
func answered[R kmsg.Response](t *testing.T, w waiter) R {
	t.Helper()
	select {
	case r := <-w:
		return r.(R)
	default:
		t.Fatal("the parked request was not answered")
		panic("unreachable")
	}
}

func notAnswered(t *testing.T, w waiter) {
	t.Helper()
	select {
	case r := <-w:
		t.Fatalf("the parked request was answered: %+v", r)
	default:
	}
}

func wantErr(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	if want == nil && got != 0 || want != nil && got != want.Code {
		t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
	}
}

// stable brings the group to Stable with n members, each assigned its own id, the way clients do:
// members answered at an older generation rejoin, then all sync, the leader last.
func (h *groupHarness) stable(n int) (ids []string, gen int32) {
	h.t.Helper()
	for range n {
		id, _ := h.newMember()
		ids = append(ids, id)
	}
	for _, id := range ids {
		h.g.mu.Lock()
		parked := h.g.members[id].joinW != nil
		h.g.mu.Unlock()
		if !parked && h.state() == groupPreparingRebalance {
			h.join(joinReq(9, id, nil))
		}
	}
	h.g.mu.Lock()
	state, leader := h.g.state, h.g.leader
	gen = h.g.generation
	h.g.mu.Unlock()
	if state != groupCompletingRebalance {
		h.t.Fatalf("state %s after every member joined", state)
	}
	assign := map[string]string{}
	for _, id := range ids {
		assign[id] = id
	}
	var ws []waiter
	for _, id := range ids {
		if id != leader {
			_, w := h.sync(id, gen, nil)
			ws = append(ws, w)
		}
	}
	_, w := h.sync(leader, gen, assign)
	for _, w := range append(ws, w) {
		wantErr(h.t, "sync", answered[*kmsg.SyncGroupResponse](h.t, w).ErrorCode, nil)
	}
	return ids, gen
}

// One member: MEMBER_ID_REQUIRED, then a join phase that completes at once, a sync, Stable. The new
// generation is persisted before the member hears of it, the assignment before the member gets it.
func TestGroupJoinSyncStable(t *testing.T) {
	h := newGroupHarness(t)
	id, w := h.newMember()
	jr := answered[*kmsg.JoinGroupResponse](t, w)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.LeaderID != id || jr.MemberID != id || *jr.Protocol != "range" || len(jr.Members) != 1 {
		t.Fatalf("join response %+v", jr)
	}
	if m := h.lastMeta(); m.Generation != 1 || m.State != "CompletingRebalance" || len(m.Members) != 1 {
		t.Fatalf("persisted %+v before answering the join", m)
	}
	wantErr(t, "heartbeat before the sync", h.heartbeat(id, 1, nil), nil)
	wantErr(t, "heartbeat at an old generation", h.heartbeat(id, 0, nil), kerr.IllegalGeneration)
	wantErr(t, "heartbeat of a stranger", h.heartbeat("nobody", 1, nil), kerr.UnknownMemberID)
	_, sw := h.sync(id, 1, map[string]string{id: "mine"})
	sr := answered[*kmsg.SyncGroupResponse](t, sw)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "mine" || h.state() != groupStable {
		t.Fatalf("sync response %+v, state %s", sr, h.state())
	}
	if m := h.lastMeta(); m.State != "Stable" || string(m.Members[0].Assignment) != "mine" {
		t.Fatalf("persisted %+v", m)
	}
	// A follower-free, unchanged rejoin from the leader rebalances; a sync in Stable is answered at once.
	sr, _ = h.sync(id, 1, nil)
	if sr == nil || string(sr.MemberAssignment) != "mine" {
		t.Fatalf("sync in Stable: %+v", sr)
	}
}

// A second member's join starts a rebalance: the first learns it from its heartbeat, rejoins, and
// both get the next generation; only the leader gets the members' metadata.
func TestGroupSecondMemberRebalances(t *testing.T) {
	h := newGroupHarness(t)
	ids, gen := h.stable(1)
	a := ids[0]
	b, bw := h.newMember()
	notAnswered(t, bw)
	wantErr(t, "heartbeat during the rebalance", h.heartbeat(a, gen, nil), kerr.RebalanceInProgress)
	_, aw := h.join(joinReq(9, a, nil))
	ja, jb := answered[*kmsg.JoinGroupResponse](t, aw), answered[*kmsg.JoinGroupResponse](t, bw)
	if ja.Generation != gen+1 || jb.Generation != gen+1 || ja.LeaderID != a || jb.LeaderID != a {
		t.Fatalf("joins: %+v, %+v", ja, jb)
	}
	if len(ja.Members) != 2 || len(jb.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d", len(ja.Members), len(jb.Members))
	}
	_, wb := h.sync(b, gen+1, nil)
	notAnswered(t, wb)
	_, wa := h.sync(a, gen+1, map[string]string{a: "pa", b: "pb"})
	if r := answered[*kmsg.SyncGroupResponse](t, wb); string(r.MemberAssignment) != "pb" {
		t.Fatalf("follower's assignment %q", r.MemberAssignment)
	}
	if r := answered[*kmsg.SyncGroupResponse](t, wa); string(r.MemberAssignment) != "pa" {
		t.Fatalf("leader's assignment %q", r.MemberAssignment)
	}
}

// A member that does not rejoin within the rebalance timeout is dropped when the phase completes.
func TestGroupRebalanceTimeout(t *testing.T) {
	h := newGroupHarness(t)
	ids, gen := h.stable(2)
	c, cw := h.newMember()
	_, w0 := h.join(joinReq(9, ids[0], nil))
	// ids[1] keeps heartbeating, so its session lasts, but never rejoins.
	step := sessionMs / 4 * time.Millisecond
	elapsed := time.Duration(0)
	for ; elapsed+step < rebalanceMs*time.Millisecond; elapsed += step {
		h.clock.advance(step)
		wantErr(t, "heartbeat", h.heartbeat(ids[1], gen, nil), kerr.RebalanceInProgress)
	}
	notAnswered(t, cw)
	h.clock.advance(rebalanceMs*time.Millisecond - elapsed)
	j0, jc := answered[*kmsg.JoinGroupResponse](t, w0), answered[*kmsg.JoinGroupResponse](t, cw)
	if j0.Generation != gen+1 || jc.Generation != gen+1 || len(j0.Members)+len(jc.Members) != 2 {
		t.Fatalf("joins after the timeout: %+v, %+v", j0, jc)
	}
	wantErr(t, "heartbeat of the dropped member", h.heartbeat(ids[1], gen, nil), kerr.UnknownMemberID)
	if _, ok := h.g.members[c]; !ok {
		t.Fatal("the new member is not in the group")
	}
}

// A member that stops heartbeating expires after its session timeout; the others rebalance without it.
func TestGroupMemberExpiry(t *testing.T) {
	h := newGroupHarness(t)
	ids, gen := h.stable(2)
	for range 3 {
		h.clock.advance(sessionMs / 4 * time.Millisecond)
		wantErr(t, "heartbeat", h.heartbeat(ids[0], gen, nil), nil)
	}
	if h.state() != groupStable {
		t.Fatalf("state %s before the session timeout", h.state())
	}
	h.clock.advance(sessionMs / 4 * time.Millisecond)
	if h.state() != groupPreparingRebalance {
		t.Fatalf("state %s after a member's session expired, want PreparingRebalance", h.state())
	}
	wantErr(t, "heartbeat of the expired member", h.heartbeat(ids[1], gen, nil), kerr.UnknownMemberID)
	wantErr(t, "heartbeat of the live member", h.heartbeat(ids[0], gen, nil), kerr.RebalanceInProgress)
	_, w := h.join(joinReq(9, ids[0], nil))
	if r := answered[*kmsg.JoinGroupResponse](t, w); r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("join after the expiry: %+v", r)
	}
	// The last member leaving empties the group, at a new generation.
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version, req.Group = 5, "g"
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[0]}, {MemberID: "nobody"}}
	h.g.mu.Lock()
	lr := h.g.leave(req).(*kmsg.LeaveGroupResponse)
	h.g.mu.Unlock()
	if lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave: %+v", lr.Members)
	}
	if h.state() != groupEmpty || h.lastMeta().Generation != gen+2 || h.lastMeta().State != "Empty" {
		t.Fatalf("state %s, persisted %+v", h.state(), h.lastMeta())
	}
}

// A static member restarting takes its place under a new member id without a rebalance: the old id
// is fenced and the new one keeps the assignment. The leader doing so without KIP-814 rebalances.
func TestGroupStaticMemberReplacement(t *testing.T) {
	h := newGroupHarness(t)
	inst := "instance-1"
	jr, sw := h.join(joinReq(9, "", &inst))
	if jr != nil {
		t.Fatalf("a static member's first join was answered: %+v", jr)
	}
	j := answered[*kmsg.JoinGroupResponse](t, sw)
	old, gen := j.MemberID, j.Generation
	other, ow := h.newMember() // joins the next phase
	notAnswered(t, ow)
	wantErr(t, "static heartbeat", h.heartbeat(old, gen, &inst), kerr.RebalanceInProgress)
	_, w := h.join(joinReq(9, old, &inst))
	answered[*kmsg.JoinGroupResponse](t, w)
	answered[*kmsg.JoinGroupResponse](t, ow)
	gen++
	_, syncOther := h.sync(other, gen, nil)
	h.g.mu.Lock()
	leader := h.g.leader
	h.g.mu.Unlock()
	_, syncLeader := h.sync(leader, gen, map[string]string{old: "static-part", other: "other-part"})
	answered[*kmsg.SyncGroupResponse](t, syncOther)
	answered[*kmsg.SyncGroupResponse](t, syncLeader)

	restarted := joinReq(9, "", &inst)
	r, _ := h.join(restarted)
	if r == nil || r.ErrorCode != 0 || r.Generation != gen || r.MemberID == old {
		t.Fatalf("restarted static member's join: %+v", r)
	}
	if h.state() != groupStable {
		t.Fatalf("state %s after a static restart, want Stable (no rebalance)", h.state())
	}
	wantErr(t, "the old member id", h.heartbeat(old, gen, &inst), kerr.FencedInstanceID)
	wantErr(t, "the new member id", h.heartbeat(r.MemberID, gen, &inst), nil)
	sr, _ := h.sync(r.MemberID, gen, nil)
	if sr == nil || string(sr.MemberAssignment) != "static-part" {
		t.Fatalf("restarted member's assignment: %+v", sr)
	}
	if m := h.lastMeta(); !slices.ContainsFunc(m.Members, func(pm coord.GroupMember) bool { return pm.ID == r.MemberID }) {
		t.Fatalf("the new member id was not persisted: %+v", m.Members)
	}
	// Leaving by instance id removes the static member for good.
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version, req.Group = 5, "g"
	req.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: &inst}}
	h.g.mu.Lock()
	lr := h.g.leave(req).(*kmsg.LeaveGroupResponse)
	h.g.mu.Unlock()
	if lr.Members[0].ErrorCode != 0 || h.state() != groupPreparingRebalance {
		t.Fatalf("leave by instance: %+v, state %s", lr.Members, h.state())
	}
}

// Members that join but never sync are dropped when the sync phase times out.
func TestGroupSyncTimeout(t *testing.T) {
	h := newGroupHarness(t)
	ids, gen := h.stable(2)
	h.g.mu.Lock()
	leader := h.g.leader
	h.g.mu.Unlock()
	follower := ids[0]
	if follower == leader {
		follower = ids[1]
	}
	_, wf := h.join(joinReq(9, follower, nil, "range", "sticky")) // changed protocols: a rebalance
	_, wl := h.join(joinReq(9, leader, nil))
	answered[*kmsg.JoinGroupResponse](t, wf)
	answered[*kmsg.JoinGroupResponse](t, wl)
	sr, sw := h.sync(follower, gen+1, nil) // the leader heartbeats but never syncs
	if sw == nil {
		t.Fatalf("the follower's sync was answered at once: %v", kerr.ErrorForCode(sr.ErrorCode))
	}
	step := sessionMs / 4 * time.Millisecond
	for elapsed := time.Duration(0); elapsed+step < rebalanceMs*time.Millisecond; elapsed += step {
		h.clock.advance(step)
		wantErr(t, "the leader's heartbeat", h.heartbeat(leader, gen+1, nil), nil)
	}
	notAnswered(t, sw)
	h.clock.advance(step)
	if r := answered[*kmsg.SyncGroupResponse](t, sw); r.ErrorCode != kerr.RebalanceInProgress.Code {
		t.Fatalf("the synced member's answer: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	wantErr(t, "the leader that never synced", h.heartbeat(leader, gen+1, nil), kerr.UnknownMemberID)
	jr, w := h.join(joinReq(9, follower, nil))
	if w == nil {
		t.Fatalf("rejoin answered at once: %v", kerr.ErrorForCode(jr.ErrorCode))
	}
	if r := answered[*kmsg.JoinGroupResponse](t, w); r.Generation != gen+2 || r.LeaderID != follower {
		t.Fatalf("rejoin after the sync timeout: %+v", r)
	}
}

// Commits follow Kafka's rules: simple commits only to an Empty group; members at their generation,
// also while the group prepares a rebalance, but not while it completes one.
func TestGroupCommitRules(t *testing.T) {
	h := newGroupHarness(t)
	tp := coord.TP{Topic: coord.NewTopicID()}
	commit := func(gen int32, member string) *kerr.Error {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Generation, req.MemberID = gen, member
		h.g.mu.Lock()
		defer h.g.mu.Unlock()
		m, e := h.g.commitCheck(req)
		if e != nil {
			return e
		}
		if err := h.g.commit(m, []coord.GroupOffset{{Topic: tp.Topic, Offset: int64(len(h.writes))}}); err != nil {
			return kerr.ErrorForCode(h.g.failCode()).(*kerr.Error)
		}
		return nil
	}
	if e := commit(-1, ""); e != nil {
		t.Fatalf("simple commit to a new group: %v", e)
	}
	if h.writes[0].Meta == nil {
		t.Fatal("the first commit did not persist the group's metadata")
	}
	if e := commit(3, "m"); e != kerr.UnknownMemberID {
		t.Fatalf("a member's commit to an Empty group: %v", e)
	}
	id, w := h.newMember()
	answered[*kmsg.JoinGroupResponse](t, w)
	if e := commit(1, id); e != kerr.RebalanceInProgress {
		t.Fatalf("commit while completing a rebalance: %v", e)
	}
	if e := commit(-1, ""); e != kerr.UnknownMemberID {
		t.Fatalf("simple commit to a group with members: %v", e)
	}
	_, sw := h.sync(id, 1, map[string]string{id: "x"})
	answered[*kmsg.SyncGroupResponse](t, sw)
	if e := commit(0, id); e != kerr.IllegalGeneration {
		t.Fatalf("commit at an old generation: %v", e)
	}
	if e := commit(1, id); e != nil {
		t.Fatalf("commit in Stable: %v", e)
	}
	h.newMember() // a rebalance starts
	if e := commit(1, id); e != nil {
		t.Fatalf("commit while preparing a rebalance (a revoking member's): %v", e)
	}
	if got := h.g.offsets[tp].Offset; got != int64(len(h.writes)-1) {
		t.Fatalf("offset in memory %d, want the last written", got)
	}
}

// A restored group keeps its generation (it never goes backwards) and its Stable members; one caught
// completing a rebalance rebalances again.
func TestGroupRestore(t *testing.T) {
	h := newGroupHarness(t)
	ids, gen := h.stable(2)
	snap := coord.GroupSnapshot{Name: "g", Meta: h.lastMeta()}
	h2 := newGroupHarness(t)
	cfg := DefaultConfig()
	g := restoreGroup(h2.env(&cfg), snap)
	h2.g = g
	if g.state != groupStable || g.generation != gen || len(g.members) != 2 {
		t.Fatalf("restored %s gen %d with %d members", g.state, g.generation, len(g.members))
	}
	wantErr(t, "heartbeat at the new coordinator", h2.heartbeat(ids[0], gen, nil), nil)
	// Members that stop heartbeating expire there too.
	h2.clock.advance(sessionMs / 2 * time.Millisecond)
	wantErr(t, "heartbeat at the new coordinator", h2.heartbeat(ids[0], gen, nil), nil)
	h2.clock.advance(sessionMs / 2 * time.Millisecond)
	if h2.state() != groupPreparingRebalance || len(g.members) != 1 {
		t.Fatalf("state %s", h2.state())
	}

	snap.Meta.State = "CompletingRebalance"
	h3 := newGroupHarness(t)
	g = restoreGroup(h3.env(&cfg), snap)
	h3.g = g
	if g.state != groupPreparingRebalance {
		t.Fatalf("restored a completing rebalance as %s", g.state)
	}
	wantErr(t, "heartbeat", h3.heartbeat(ids[0], gen, nil), kerr.RebalanceInProgress)
	_, w0 := h3.join(joinReq(9, ids[0], nil))
	_, w1 := h3.join(joinReq(9, ids[1], nil))
	if r := answered[*kmsg.JoinGroupResponse](t, w0); r.Generation != gen+1 {
		t.Fatalf("generation after restore %d, want %d", r.Generation, gen+1)
	}
	answered[*kmsg.JoinGroupResponse](t, w1)
}

// A fenced write kills the group: its parked requests and later ones get NOT_COORDINATOR, and the
// shard is reported lost.
func TestGroupFencedWrite(t *testing.T) {
	h := newGroupHarness(t)
	ids, gen := h.stable(1)
	_, w := h.newMember()
	h.fail = coord.ErrFenced
	_, w0 := h.join(joinReq(9, ids[0], nil)) // completes the phase: the write is fenced
	for _, w := range []waiter{w, w0} {
		if r := answered[*kmsg.JoinGroupResponse](t, w); r.ErrorCode != kerr.NotCoordinator.Code {
			t.Fatalf("parked join answered %v", kerr.ErrorForCode(r.ErrorCode))
		}
	}
	if !h.g.gone.Load() || h.g.deadCode != kerr.NotCoordinator.Code || h.lost != 1 {
		t.Fatalf("gone %v, dead code %d, lost %d", h.g.gone.Load(), h.g.deadCode, h.lost)
	}
	_ = gen

	// An unknown outcome, or a group that changed in etcd since it was read (a write whose outcome
	// was unknown applied late): the group is reloaded by the next request (dead code 0), the shard
	// kept.
	for _, fail := range []error{errors.New("etcd unavailable"), fmt.Errorf("%w: group %q", coord.ErrGroupChanged, "g")} {
		h = newGroupHarness(t)
		h.fail = fail
		_, w = h.newMember()
		if r := answered[*kmsg.JoinGroupResponse](t, w); r.ErrorCode != kerr.CoordinatorNotAvailable.Code || h.g.deadCode != 0 || h.lost != 0 {
			t.Fatalf("after %v: %v, dead code %d, lost %d", fail, kerr.ErrorForCode(r.ErrorCode), h.g.deadCode, h.lost)
		}
	}
}

// The protocol most members prefer among those all support wins; a member supporting none of the
// group's is refused.
func TestGroupProtocolSelection(t *testing.T) {
	h := newGroupHarness(t)
	var first string
	for _, ps := range [][]string{{"sticky", "range"}, {"range", "sticky"}, {"range", "sticky", "roundrobin"}} {
		if r, _ := h.join(joinReq(3, "", nil, ps...)); r != nil { // v3: no MEMBER_ID_REQUIRED
			t.Fatalf("join answered at once: %+v", r)
		}
		if first == "" {
			for id := range h.g.members {
				first = id
			}
		}
	}
	// The first member's own phase completed at once; it rejoins the one the others started.
	_, w := h.join(joinReq(3, first, nil, "sticky", "range"))
	if r := answered[*kmsg.JoinGroupResponse](t, w); *r.Protocol != "range" || r.Generation != 2 {
		t.Fatalf("protocol %q at generation %d, want range (two votes of three) at 2", *r.Protocol, r.Generation)
	}
	r, _ := h.join(joinReq(3, "", nil, "roundrobin"))
	if r == nil || r.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("join with no common protocol: %+v", r)
	}
}

// A group takes at most group.max.size members, those pending their member id (KIP-394) counted: a new
// member past it gets GROUP_MAX_SIZE_REACHED, while members already in rejoin as before.
func TestGroupMaxSize(t *testing.T) {
	h := newGroupHarness(t)
	h.g.env.cfg.MaxSize = 2
	ids, gen := h.stable(2)
	resp, w := h.join(joinReq(9, "", nil))
	if w != nil || resp == nil || resp.ErrorCode != kerr.GroupMaxSizeReached.Code {
		t.Fatalf("third member's join: %+v, want GROUP_MAX_SIZE_REACHED", resp)
	}
	static := "static-3"
	resp, _ = h.join(joinReq(9, "", &static))
	if resp == nil || resp.ErrorCode != kerr.GroupMaxSizeReached.Code {
		t.Fatalf("new static member's join: %+v, want GROUP_MAX_SIZE_REACHED", resp)
	}
	wantErr(t, "heartbeat of a member", h.heartbeat(ids[0], gen, nil), nil)
	_, w = h.join(joinReq(9, ids[0], nil))
	if w == nil {
		t.Fatal("a member's rejoin was not parked")
	}
}

// testLogger logs warnings and errors to t.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
