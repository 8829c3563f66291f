package group

import (
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The classic group protocol, as Kafka's coordinator runs it:
//
//	Empty ──join──▶ PreparingRebalance ──every member joined, or the rebalance timeout──▶
//	CompletingRebalance ──the leader's SyncGroup──▶ Stable ──a member joins, leaves or expires──▶
//	PreparingRebalance …; the last member leaving ends in Empty.
//
// Each completed join phase starts a new generation. It is persisted before any member hears of
// it, and a successor coordinator starts from the persisted generation, so generations never go
// backwards. Members that miss the join phase are dropped when it completes; members that join but
// never sync are dropped when the sync phase times out. Every method here runs under g.mu; those
// that park a request return the waiter that its answer arrives on.

// join answers a JoinGroup at once, or parks it until the join phase completes.
func (g *group) join(req *kmsg.JoinGroupRequest, c Client) (kmsg.Response, waiter) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	if !g.acceptsProtocols(req) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return resp, nil
	}
	if g.full(req) {
		resp.ErrorCode = kerr.GroupMaxSizeReached.Code
		return resp, nil
	}
	if req.MemberID == "" {
		return g.joinNew(req, c, resp)
	}
	return g.joinKnown(req, c, resp)
}

// full reports whether the join would add a member to a group of group.max.size already, members
// pending their id counted (Kafka's GROUP_MAX_SIZE_REACHED). A member rejoining, a pending one coming
// back with its id, or a static member taking its instance's place adds none.
func (g *group) full(req *kmsg.JoinGroupRequest) bool {
	if req.MemberID != "" {
		return false
	}
	if req.InstanceID != nil && g.members[g.static[*req.InstanceID]] != nil {
		return false
	}
	if len(g.members)+len(g.pending) < g.env.cfg.MaxSize {
		return false
	}
	if g.env.cfg.MaxSizeHit != nil {
		g.env.cfg.MaxSizeHit()
	}
	return true
}

// acceptsProtocols: a joining member must speak the group's protocol type and support a protocol
// every current member supports.
func (g *group) acceptsProtocols(req *kmsg.JoinGroupRequest) bool {
	if len(g.members) == 0 {
		return true
	}
	if req.ProtocolType != g.protocolType {
		return false
	}
	for _, p := range req.Protocols {
		if g.supportedByAll(p.Name) {
			return true
		}
	}
	return false
}

func (g *group) supportedByAll(protocol string) bool {
	for _, m := range g.members {
		if !hasProtocol(m, protocol) {
			return false
		}
	}
	return true
}

func hasProtocol(m *member, protocol string) bool {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return true
		}
	}
	return false
}

// joinNew is a join without a member id: a new dynamic member gets an id to rejoin with (v4+,
// KIP-394), a static member takes its instance's place.
func (g *group) joinNew(req *kmsg.JoinGroupRequest, c Client, resp *kmsg.JoinGroupResponse) (kmsg.Response, waiter) {
	if req.InstanceID != nil {
		if old := g.members[g.static[*req.InstanceID]]; old != nil {
			return g.replaceStatic(old, req, c, resp)
		}
	}
	m := &member{id: newMemberID(c.ID, req.InstanceID), instanceID: req.InstanceID}
	m.update(req, c)
	if req.InstanceID == nil && req.Version >= 4 {
		g.pending[m.id] = m
		g.touchPending(m)
		resp.MemberID = m.id
		resp.ErrorCode = kerr.MemberIDRequired.Code
		return resp, nil
	}
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	return nil, g.addAndRebalance(m, req)
}

// joinKnown is a join from a member id: a pending member's rejoin, or a member rejoining.
func (g *group) joinKnown(req *kmsg.JoinGroupRequest, c Client, resp *kmsg.JoinGroupResponse) (kmsg.Response, waiter) {
	if m := g.pending[req.MemberID]; m != nil {
		delete(g.pending, m.id)
		m.stopTimer()
		m.update(req, c)
		return nil, g.addAndRebalance(m, req)
	}
	if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	m := g.members[req.MemberID]
	if m == nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil
	}
	switch g.state {
	case groupPreparingRebalance:
		m.update(req, c)
		w := m.parkJoin(req)
		g.checkJoin()
		return nil, w
	case groupCompletingRebalance, groupStable:
		// A follower rejoining with nothing changed gets the current generation back; the leader
		// rejoining or anything changing starts a rebalance.
		if m.sameProtocols(req.Protocols) && (g.state == groupCompletingRebalance || m.id != g.leader) {
			g.touch(m)
			return g.joinResponse(m, req), nil
		}
		m.update(req, c)
		w := m.parkJoin(req)
		g.prepareRebalance()
		return nil, w
	}
	resp.ErrorCode = kerr.UnknownMemberID.Code
	return resp, nil
}

// checkInstance checks a static member's instance id against the member id it claims.
func (g *group) checkInstance(instanceID *string, memberID string) *kerr.Error {
	if instanceID == nil {
		return nil
	}
	known, ok := g.static[*instanceID]
	switch {
	case !ok:
		return kerr.UnknownMemberID
	case known != memberID:
		return kerr.FencedInstanceID
	}
	return nil
}

// replaceStatic lets a restarted static member take its instance's place under a new member id,
// fencing the old one. In a Stable group with unchanged protocols there is no rebalance: the member
// keeps its assignment (KIP-345); a leader that cannot skip assigning (JoinGroup < v9, KIP-814)
// still triggers one.
func (g *group) replaceStatic(old *member, req *kmsg.JoinGroupRequest, c Client, resp *kmsg.JoinGroupResponse) (kmsg.Response, waiter) {
	m := &member{id: newMemberID(c.ID, req.InstanceID), instanceID: req.InstanceID, assignment: old.assignment}
	m.update(req, c)
	wasLeader, wasPendingSync := g.leader == old.id, g.pendingSync[old.id]
	g.removeMember(old, kerr.FencedInstanceID)
	g.members[m.id] = m
	g.static[*m.instanceID] = m.id
	if wasLeader {
		g.leader = m.id
	}
	if wasPendingSync {
		g.pendingSync[m.id] = true
	}
	g.env.log.Info("static group member replaced", "group", g.name, "instance", *m.instanceID, "old", old.id, "new", m.id)
	switch g.state {
	case groupStable:
		if old.sameProtocols(req.Protocols) && (!wasLeader || req.Version >= 9) {
			if err := g.persist(coordMeta(g)); err != nil {
				resp.ErrorCode = g.failCode()
				return resp, nil
			}
			g.touch(m)
			r := g.joinResponse(m, req)
			r.SkipAssignment = wasLeader
			return r, nil
		}
		w := m.parkJoin(req)
		g.prepareRebalance()
		return nil, w
	case groupPreparingRebalance:
		w := m.parkJoin(req)
		g.checkJoin()
		return nil, w
	default: // CompletingRebalance: the new member needs a join response of its own
		w := m.parkJoin(req)
		g.prepareRebalance()
		return nil, w
	}
}

// update takes a join's settings.
func (m *member) update(req *kmsg.JoinGroupRequest, c Client) {
	m.clientID, m.clientHost = c.ID, clientHost(c.Remote)
	m.session = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || req.RebalanceTimeoutMillis <= 0 {
		m.rebalance = m.session // v0 has no rebalance timeout: Kafka uses the session timeout
	}
	m.protocols = req.Protocols
}

// parkJoin parks req; a join it replaces (a client retrying) is told to rejoin.
func (m *member) parkJoin(req *kmsg.JoinGroupRequest) waiter {
	if m.joinW != nil {
		r := m.join.ResponseKind().(*kmsg.JoinGroupResponse)
		r.ErrorCode, r.MemberID = kerr.RebalanceInProgress.Code, m.id
		m.joinW.answer(r)
	}
	m.join, m.joinW = req, newWaiter()
	return m.joinW
}

// touchPending gives a member that got MEMBER_ID_REQUIRED one session timeout to rejoin.
func (g *group) touchPending(m *member) {
	m.timerSeq++
	seq := m.timerSeq
	m.stopTimer = g.after(m.session, func() {
		if g.pending[m.id] == m && m.timerSeq == seq {
			delete(g.pending, m.id)
			g.checkJoin()
		}
	})
}

// addAndRebalance adds a member with its join parked and rebalances.
func (g *group) addAndRebalance(m *member, req *kmsg.JoinGroupRequest) waiter {
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.members[m.id] = m
	g.touch(m)
	w := m.parkJoin(req)
	g.prepareRebalance()
	return w
}

// prepareRebalance starts a join phase (or goes on with the one under way): members must rejoin
// within the largest rebalance timeout among them.
func (g *group) prepareRebalance() {
	if g.state == groupCompletingRebalance {
		// The assignment being synced is void: members waiting for it must rejoin.
		for _, m := range g.members {
			m.assignment = nil
			if m.syncW != nil {
				r := m.sync.ResponseKind().(*kmsg.SyncGroupResponse)
				r.ErrorCode = kerr.RebalanceInProgress.Code
				m.syncW.answer(r)
				m.sync, m.syncW = nil, nil
				g.touch(m) // as Kafka: an answer restarts the member's session
			}
		}
	}
	if g.state != groupPreparingRebalance {
		g.stopTimers()
		g.pendingSync = nil
		g.state = groupPreparingRebalance
		seq := g.timerSeq
		g.rebalanceStop = g.after(g.maxRebalanceTimeout(), func() {
			if g.timerSeq == seq {
				g.completeJoin()
			}
		})
	}
	g.checkJoin()
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// checkJoin completes the join phase once every member has rejoined and no new member is still
// due to come back with its id.
func (g *group) checkJoin() {
	if g.state != groupPreparingRebalance || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.joinW == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: members that did not rejoin are dropped, a new generation
// starts, and once it is persisted every member learns it (the leader also gets every member's
// protocol metadata to assign from).
func (g *group) completeJoin() {
	if g.state != groupPreparingRebalance {
		return
	}
	g.stopTimers()
	for _, m := range g.sortedMembers() {
		if m.joinW == nil {
			g.env.log.Info("group member did not rejoin in time", "group", g.name, "member", m.id)
			g.removeMember(m, kerr.UnknownMemberID)
		}
	}
	g.generation++
	if g.generation <= 0 {
		g.generation = 1
	}
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = groupEmpty, "", ""
		g.emptySince = g.env.cfg.Now()
		_ = g.persist(coordMeta(g)) // a failure killed the group; nobody is waiting
		return
	}
	g.protocol = g.selectProtocol()
	if g.members[g.leader] == nil {
		g.leader = g.sortedMembers()[0].id
	}
	g.state = groupCompletingRebalance
	if err := g.persist(coordMeta(g)); err != nil {
		return // the parked joins got the error
	}
	g.pendingSync = make(map[string]bool, len(g.members))
	for _, m := range g.members {
		m.joinW.answer(g.joinResponse(m, m.join))
		m.join, m.joinW = nil, nil
		g.pendingSync[m.id] = true
		g.touch(m)
	}
	seq := g.timerSeq
	g.syncStop = g.after(g.maxRebalanceTimeout(), func() {
		if g.timerSeq == seq && g.state == groupCompletingRebalance {
			g.syncExpired()
		}
	})
	g.env.log.Debug("group rebalanced", "group", g.name, "generation", g.generation, "members", len(g.members), "protocol", g.protocol)
}

// syncExpired drops the members that joined but did not sync in time, and rebalances.
func (g *group) syncExpired() {
	for id := range g.pendingSync {
		if m := g.members[id]; m != nil {
			g.env.log.Info("group member did not sync in time", "group", g.name, "member", id)
			g.removeMember(m, kerr.UnknownMemberID)
		}
	}
	g.prepareRebalance()
}

// selectProtocol is Kafka's vote: among the protocols every member supports, each member votes for
// the one it prefers most; the most votes win (ties: the first met, members in id order).
func (g *group) selectProtocol() string {
	votes := map[string]int{}
	var order []string
	for _, m := range g.sortedMembers() {
		for _, p := range m.protocols {
			if g.supportedByAll(p.Name) {
				if _, ok := votes[p.Name]; !ok {
					order = append(order, p.Name)
				}
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, p := range order {
		if best == "" || votes[p] > votes[best] {
			best = p
		}
	}
	return best
}

// joinResponse is the answer to a member's join at the current generation.
func (g *group) joinResponse(m *member, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = g.generation
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		for _, o := range g.sortedMembers() {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = o.id, o.instanceID, o.metadata(g.protocol)
			resp.Members = append(resp.Members, jm)
		}
	}
	return resp
}

// sync answers a SyncGroup at once, or parks it until the leader's assignment arrives.
func (g *group) sync(req *kmsg.SyncGroupRequest) (kmsg.Response, waiter) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(e *kerr.Error) (kmsg.Response, waiter) {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
		return fail(e)
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return fail(kerr.UnknownMemberID)
	case req.Generation != g.generation:
		return fail(kerr.IllegalGeneration)
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType, req.Protocol != nil && *req.Protocol != g.protocol:
		return fail(kerr.InconsistentGroupProtocol)
	}
	switch g.state {
	case groupPreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case groupCompletingRebalance:
		delete(g.pendingSync, m.id)
		if m.syncW != nil {
			r := m.sync.ResponseKind().(*kmsg.SyncGroupResponse)
			r.ErrorCode = kerr.RebalanceInProgress.Code
			m.syncW.answer(r)
		}
		m.sync, m.syncW = req, newWaiter()
		w := m.syncW
		g.touch(m)
		if m.id == g.leader {
			g.completeSync(req)
		}
		return nil, w
	case groupStable:
		g.touch(m)
		g.fillSync(resp, m)
		return resp, nil
	}
	return fail(kerr.UnknownMemberID)
}

// emptyConsumerAssignment is sent, in a "consumer" group, to a member the leader assigned nothing:
// some clients cannot decode an empty assignment.
var emptyConsumerAssignment = func() []byte {
	var a kmsg.ConsumerMemberAssignment
	return a.AppendTo(nil)
}()

// completeSync takes the leader's assignment: once it is persisted the group is Stable and every
// member waiting in SyncGroup gets its part.
func (g *group) completeSync(req *kmsg.SyncGroupRequest) {
	for _, m := range g.members {
		m.assignment = nil
	}
	for _, a := range req.GroupAssignment {
		if m := g.members[a.MemberID]; m != nil {
			m.assignment = a.MemberAssignment
		}
	}
	for _, m := range g.members {
		if len(m.assignment) == 0 && g.protocolType == "consumer" {
			m.assignment = emptyConsumerAssignment
		}
	}
	g.state = groupStable
	if err := g.persist(coordMeta(g)); err != nil {
		return // the parked syncs got the error
	}
	g.stopTimers()
	g.pendingSync = nil
	for _, m := range g.members {
		if m.syncW != nil {
			resp := m.sync.ResponseKind().(*kmsg.SyncGroupResponse)
			g.fillSync(resp, m)
			m.syncW.answer(resp)
			m.sync, m.syncW = nil, nil
			g.touch(m)
		}
	}
}

func (g *group) fillSync(resp *kmsg.SyncGroupResponse, m *member) {
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.MemberAssignment = m.assignment
}

// heartbeat answers a Heartbeat: REBALANCE_IN_PROGRESS tells a member to rejoin.
func (g *group) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
		resp.ErrorCode = e.Code
		return resp
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	case req.Generation != g.generation:
		resp.ErrorCode = kerr.IllegalGeneration.Code
	case g.state == groupPreparingRebalance:
		g.touch(m)
		resp.ErrorCode = kerr.RebalanceInProgress.Code
	default: // CompletingRebalance (the member heartbeats before syncing) or Stable
		g.touch(m)
	}
	return resp
}

// leave answers a LeaveGroup: v0-2 name one member, v3+ a batch (by member id or instance id).
func (g *group) leave(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	members := req.Members
	if req.Version < 3 {
		members = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	left := false
	for _, rm := range members {
		lm := kmsg.NewLeaveGroupResponseMember()
		lm.MemberID, lm.InstanceID = rm.MemberID, rm.InstanceID
		lm.ErrorCode = g.leaveOne(rm, &left)
		resp.Members = append(resp.Members, lm)
	}
	if left {
		g.memberLeft()
	}
	if req.Version < 3 {
		resp.ErrorCode, resp.Members = resp.Members[0].ErrorCode, nil
	}
	return resp
}

func (g *group) leaveOne(rm kmsg.LeaveGroupRequestMember, left *bool) int16 {
	id := rm.MemberID
	if rm.InstanceID != nil {
		known, ok := g.static[*rm.InstanceID]
		switch {
		case !ok:
			return kerr.UnknownMemberID.Code
		case id != "" && id != known:
			return kerr.FencedInstanceID.Code
		}
		id = known
	}
	if m := g.pending[id]; m != nil {
		m.stopTimer()
		delete(g.pending, id)
		*left = true
		return 0
	}
	m := g.members[id]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	g.env.log.Debug("group member left", "group", g.name, "member", id)
	g.removeMember(m, kerr.UnknownMemberID)
	*left = true
	return 0
}

// memberLeft rebalances after members went away.
func (g *group) memberLeft() {
	switch g.state {
	case groupStable, groupCompletingRebalance:
		g.prepareRebalance()
	case groupPreparingRebalance:
		g.checkJoin()
	}
}

// clientHost is Kafka's form of a client's address: "/" and the IP.
func clientHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	return "/" + remote
}
