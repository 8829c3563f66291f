package group

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// This file holds a consumer group's state as its coordinator keeps it in memory: the classic group
// protocol's state machine (group_join.go), its committed offsets (group_offsets.go), and how both
// are persisted so that another agent can take the group over (group_coordinator.go).
//
// The coordinator relays the members' protocol metadata and the leader's assignments; it never
// interprets them (only OffsetDelete reads the consumer protocol's subscriptions, as Kafka does).

// groupState is a classic group's state, by Kafka's names (DescribeGroups and ListGroups report them).
type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

var groupStateNames = [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}

func (s groupState) String() string { return groupStateNames[s] }

// clock is the time the group timers run on: the real one, or a fake one in the state machine's tests.
type clock interface {
	Now() time.Time
	// AfterFunc runs f after d unless the returned stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// timers is the real clock. Callbacks that are running are counted, so that close can wait for them;
// after close none starts.
type timers struct {
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

func (*timers) Now() time.Time { return time.Now() }

func (ts *timers) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, func() {
		ts.mu.Lock()
		if ts.closed {
			ts.mu.Unlock()
			return
		}
		ts.running.Add(1)
		ts.mu.Unlock()
		defer ts.running.Done()
		f()
	}).Stop
}

// close stops every future callback and waits for the running ones.
func (ts *timers) close() {
	ts.mu.Lock()
	ts.closed = true
	ts.mu.Unlock()
	ts.running.Wait()
}

// waiter carries the answer to a parked JoinGroup or SyncGroup. It never blocks the group: the
// channel holds the one answer, and a client that went away leaves it unread.
type waiter chan kmsg.Response

func newWaiter() waiter { return make(waiter, 1) }

func (w waiter) answer(r kmsg.Response) {
	select {
	case w <- r:
	default:
	}
}

// groupEnv is what a group needs from the shard that holds it.
type groupEnv struct {
	cfg   *Config
	clock clock
	log   hclog.Logger
	// write persists a change of the group, fenced by the shard's leader epoch.
	write func(g *group, w coord.GroupWrite) error
	// lost reports a fenced write: the shard is no longer this agent's.
	lost func(err error)
}

// member is one member of a group.
type member struct {
	id         string
	instanceID *string // static membership (KIP-345)
	clientID   string
	clientHost string
	session    time.Duration
	rebalance  time.Duration
	protocols  []kmsg.JoinGroupRequestProtocol
	assignment []byte

	join  *kmsg.JoinGroupRequest // parked JoinGroup: answered when the join phase completes
	joinW waiter
	sync  *kmsg.SyncGroupRequest // parked SyncGroup: answered when the leader's assignment arrives
	syncW waiter

	stopTimer func() bool // session (or, for a pending member, rejoin) timeout
	timerSeq  uint64
}

func (m *member) parked() bool { return m.joinW != nil || m.syncW != nil }

// sameProtocols reports whether a rejoin changes nothing the leader assigns from.
func (m *member) sameProtocols(ps []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
}

func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// group is one consumer group on its coordinator. Every field but name and env is guarded by mu;
// gone is also readable without it.
type group struct {
	env  *groupEnv
	name string

	mu       sync.Mutex
	gone     atomic.Bool // killed: no longer served from this object
	deadCode int16       // answer to requests reaching a killed group; 0: look the group up again

	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	pending      map[string]*member // got MEMBER_ID_REQUIRED, must rejoin with their id (KIP-394)
	static       map[string]string  // instance id → member id
	pendingSync  map[string]bool    // joined this generation, SyncGroup still due

	rebalanceStop func() bool
	syncStop      func() bool
	timerSeq      uint64 // invalidates group-level timers that fire after they were replaced

	emptySince time.Time // when the group last became Empty (or was created or loaded Empty)

	offsets map[coord.TP]coord.GroupOffset
	stored  bool  // the group has metadata in etcd
	version int64 // the group's version in etcd as this object knows it (coord.GroupWrite.Version)
	deleted bool  // by DeleteGroups: the shard forgets this object

	txn map[int64]coord.PendingOffsets // offsets of open transactions, by producer id (txn_offsets.go)
}

func newGroup(env *groupEnv, name string) *group {
	return &group{
		env:     env,
		name:    name,
		members: map[string]*member{},
		pending: map[string]*member{},
		static:  map[string]string{},
		offsets: map[coord.TP]coord.GroupOffset{},
		txn:     map[int64]coord.PendingOffsets{},

		emptySince: env.cfg.Now(),
	}
}

// after runs fn under the group's lock after d, unless the group is killed first.
func (g *group) after(d time.Duration, fn func()) func() bool {
	return g.env.clock.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.gone.Load() {
			fn()
		}
	})
}

// touch (re)starts m's session timeout: a member heard from is alive for another session timeout.
func (g *group) touch(m *member) {
	if m.stopTimer != nil {
		m.stopTimer()
	}
	m.timerSeq++
	seq := m.timerSeq
	m.stopTimer = g.after(m.session, func() {
		if g.members[m.id] == m && m.timerSeq == seq {
			g.sessionExpired(m)
		}
	})
}

// sessionExpired removes a member not heard from for its session timeout. A member with a parked
// JoinGroup or SyncGroup is waiting on the group, not gone.
func (g *group) sessionExpired(m *member) {
	if m.parked() {
		g.touch(m)
		return
	}
	g.env.log.Info("group member session expired", "group", g.name, "member", m.id)
	g.removeMember(m, kerr.UnknownMemberID)
	g.memberLeft()
}

// removeMember drops m without rebalancing; its parked requests get code.
func (g *group) removeMember(m *member, code *kerr.Error) {
	g.answerParked(m, code.Code)
	if m.stopTimer != nil {
		m.stopTimer()
	}
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
	}
}

// answerParked answers m's parked requests with an error.
func (g *group) answerParked(m *member, code int16) {
	if m.joinW != nil {
		resp := m.join.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID = code, m.id
		m.joinW.answer(resp)
		m.join, m.joinW = nil, nil
	}
	if m.syncW != nil {
		resp := m.sync.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		m.syncW.answer(resp)
		m.sync, m.syncW = nil, nil
	}
}

// kill ends this object's service of the group: timers stop, parked requests get answer, and
// requests that reach it afterwards get deadCode (0: look the group up again).
func (g *group) kill(answer, deadCode int16) {
	if g.gone.Load() {
		return
	}
	g.state = groupDead
	g.deadCode = deadCode
	g.gone.Store(true)
	g.stopTimers()
	for _, m := range g.members {
		g.answerParked(m, answer)
		if m.stopTimer != nil {
			m.stopTimer()
		}
	}
	for _, m := range g.pending {
		if m.stopTimer != nil {
			m.stopTimer()
		}
	}
}

func (g *group) stopTimers() {
	g.timerSeq++
	if g.rebalanceStop != nil {
		g.rebalanceStop()
		g.rebalanceStop = nil
	}
	if g.syncStop != nil {
		g.syncStop()
		g.syncStop = nil
	}
}

// persist writes w. When it fails the group is killed: after a fence the shard is someone else's
// (NOT_COORDINATOR, and the shard is dropped); after another error the outcome is unknown, or the
// group in etcd is not the state this object holds (coord.ErrGroupChanged: an earlier write whose
// outcome was unknown applied late), so the group is read afresh from etcd by the next request.
func (g *group) persist(w coord.GroupWrite) error {
	err := g.env.write(g, w)
	if err == nil {
		if w.Meta != nil {
			g.stored = true
		}
		if w.Delete {
			g.stored = false
		}
		return nil
	}
	g.failed(err)
	return err
}

// failed kills the group after a write that failed with err (see persist).
func (g *group) failed(err error) {
	if errors.Is(err, coord.ErrFenced) {
		g.kill(kerr.NotCoordinator.Code, kerr.NotCoordinator.Code)
		g.env.lost(err)
	} else {
		g.env.log.Warn("persisting group failed; it will be reloaded", "group", g.name, "error", err)
		g.kill(kerr.CoordinatorNotAvailable.Code, 0)
	}
}

// failCode is what a request whose write failed answers.
func (g *group) failCode() int16 {
	if g.deadCode != 0 {
		return g.deadCode
	}
	return kerr.CoordinatorNotAvailable.Code
}

// vacant reports whether the group holds nothing worth keeping in memory: a group that only a
// failed request created.
func (g *group) vacant() bool {
	return g.state == groupEmpty && !g.stored && len(g.members) == 0 && len(g.pending) == 0 && len(g.offsets) == 0 && len(g.txn) == 0
}

// sortedMembers lists the members by id, so that what the group writes and answers is deterministic.
func (g *group) sortedMembers() []*member {
	out := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *member) int { return strings.Compare(a.id, b.id) })
	return out
}

// meta is the group's metadata as persisted.
func (g *group) meta() *coord.GroupMeta {
	gm := &coord.GroupMeta{State: g.state.String(), Generation: g.generation, ProtocolType: g.protocolType,
		Protocol: g.protocol, Leader: g.leader}
	if g.state == groupEmpty {
		gm.EmptySinceMs = g.emptySince.UnixMilli()
	}
	for _, m := range g.sortedMembers() {
		pm := coord.GroupMember{ID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			SessionTimeoutMs: int32(m.session / time.Millisecond), RebalanceTimeoutMs: int32(m.rebalance / time.Millisecond),
			Assignment: m.assignment}
		for _, p := range m.protocols {
			pm.Protocols = append(pm.Protocols, coord.GroupProtocol{Name: p.Name, Metadata: p.Metadata})
		}
		gm.Members = append(gm.Members, pm)
	}
	return gm
}

// coordMeta is the write that persists the group's metadata as it is now.
func coordMeta(g *group) coord.GroupWrite { return coord.GroupWrite{Meta: g.meta()} }

// restoreGroup rebuilds a group from what a previous coordinator persisted. A Stable group stays
// Stable: its members keep heartbeating, now here, with their session timeouts restarted. A group
// that was completing a rebalance rebalances again, since its assignment never reached etcd.
func restoreGroup(env *groupEnv, snap coord.GroupSnapshot) *group {
	g := newGroup(env, snap.Name)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.version = snap.Version
	for _, o := range snap.Offsets {
		g.offsets[o.TP()] = o
	}
	for _, p := range snap.Pending {
		g.txn[p.ProducerID] = p
	}
	gm := snap.Meta
	if gm == nil {
		return g
	}
	g.stored = true
	g.generation, g.protocolType, g.protocol, g.leader = gm.Generation, gm.ProtocolType, gm.Protocol, gm.Leader
	for _, pm := range gm.Members {
		m := &member{id: pm.ID, instanceID: pm.InstanceID, clientID: pm.ClientID, clientHost: pm.ClientHost,
			session: time.Duration(pm.SessionTimeoutMs) * time.Millisecond, rebalance: time.Duration(pm.RebalanceTimeoutMs) * time.Millisecond,
			assignment: pm.Assignment}
		for _, p := range pm.Protocols {
			m.protocols = append(m.protocols, kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: p.Metadata})
		}
		g.members[m.id] = m
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
		g.touch(m)
	}
	switch {
	case len(g.members) == 0:
		g.state = groupEmpty
		if gm.EmptySinceMs > 0 { // else since now: the retention of a group persisted without it starts over
			g.emptySince = time.UnixMilli(gm.EmptySinceMs)
		}
	case gm.State == groupStable.String():
		g.state = groupStable
	default:
		g.state = groupCompletingRebalance
		g.prepareRebalance()
	}
	return g
}

// newMemberID is Kafka's form: the client id (or, for a static member, the instance id), a dash and a
// random UUID.
func newMemberID(clientID string, instanceID *string) string {
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	h := hex.EncodeToString(b[:])
	return prefix + "-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
