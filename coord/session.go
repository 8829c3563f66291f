package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Session is an agent's one etcd lease. Its registration (agents/<id>) and every leader key it
// takes hang off that lease, so renewing it costs the same whatever the agent leads, and losing
// it (Done) ends every leadership at once.
type Session struct {
	c    *Client
	info AgentInfo
	cs   *concurrency.Session
	hb   heartbeat

	closeOnce sync.Once
	closeErr  error
}

// registerAttempts bounds the retries when registrations of the same id race.
const registerAttempts = 5

// Register grants a lease of ttl (whole seconds, at least 1), keeps it alive and registers info
// under agents/<info.ID> on it. A previous registration of the same id at the same address is a
// dead predecessor: its lease is revoked at once, so its partitions move without waiting for the
// TTL. A live registration at another address is ErrAgentIDInUse.
func (c *Client) Register(ctx context.Context, info AgentInfo, ttl time.Duration) (*Session, error) {
	defer c.metrics.observeQuery(ctx, opRegister, time.Now())
	if info.ID == "" || info.Addr == "" {
		return nil, errors.New("coord: register: agent id and address are required")
	}
	if info.Started.IsZero() {
		info.Started = time.Now().UTC()
	}
	val, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("coord: register: encode agent %q: %w", info.ID, err)
	}
	secs := int64(max(1, math.Ceil(ttl.Seconds())))
	granted := time.Now()
	grant, err := c.etcd.Grant(ctx, secs)
	if err != nil {
		return nil, fmt.Errorf("coord: register %q: grant lease: %w", info.ID, err)
	}
	// The keep-alive runs on the client's context, not ctx: the session outlives Register.
	cs, err := concurrency.NewSession(c.etcd, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(secs)))
	if err != nil {
		c.revokeQuietly(grant.ID)
		return nil, fmt.Errorf("coord: register %q: keep lease alive: %w", info.ID, err)
	}
	if err := c.claimAgentKey(ctx, info, string(val), grant.ID); err != nil {
		cs.Orphan()
		c.revokeQuietly(grant.ID)
		return nil, err
	}
	s := &Session{c: c, info: info, cs: cs}
	if err := s.startHeartbeat(granted); err != nil { // only when the client is closing
		cs.Orphan()
		c.revokeQuietly(grant.ID)
		return nil, fmt.Errorf("coord: register %q: watch lease renewals: %w", info.ID, err)
	}
	c.metrics.heartbeat.follow(s)
	c.log.Info("agent registered", "agent", info.ID, "addr", info.Addr, "lease", fmt.Sprintf("%x", grant.ID), "ttl", secs)
	return s, nil
}

// claimAgentKey puts agents/<id> on lease unless a live agent at another address holds it.
func (c *Client) claimAgentKey(ctx context.Context, info AgentInfo, val string, lease clientv3.LeaseID) error {
	key := c.keys.agent(info.ID)
	for range registerAttempts {
		resp, err := c.etcd.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("coord: register %q: %w", info.ID, err)
		}
		var rev int64
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			rev = kv.ModRevision
			if retry, err := c.displace(ctx, info, kv.Value, clientv3.LeaseID(kv.Lease)); err != nil || retry {
				if err != nil {
					return err
				}
				continue
			}
		}
		txn, err := c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, val, clientv3.WithLease(lease))).
			Commit()
		if err != nil {
			return fmt.Errorf("coord: register %q: %w", info.ID, err)
		}
		if txn.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("coord: register %q: agent key keeps changing, gave up after %d attempts", info.ID, registerAttempts)
}

// displace deals with an existing registration of our id. It revokes a predecessor at our
// address (retry: re-read the key, now gone), refuses a live agent elsewhere, and lets the caller
// overwrite a registration whose lease is already dead.
func (c *Client) displace(ctx context.Context, info AgentInfo, val []byte, lease clientv3.LeaseID) (retry bool, err error) {
	var old AgentInfo
	_ = json.Unmarshal(val, &old) // an undecodable registration counts as another address
	if old.Addr == info.Addr && lease != clientv3.NoLease {
		if _, err := c.etcd.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return false, fmt.Errorf("coord: register %q: revoke predecessor's lease: %w", info.ID, err)
		}
		c.log.Info("revoked predecessor's lease", "agent", info.ID, "addr", info.Addr, "lease", fmt.Sprintf("%x", lease))
		return true, nil
	}
	if old.Addr == info.Addr || lease == clientv3.NoLease {
		return false, nil
	}
	ttl, err := c.etcd.TimeToLive(ctx, lease)
	if err != nil {
		return false, fmt.Errorf("coord: register %q: check lease: %w", info.ID, err)
	}
	if ttl.TTL > 0 {
		return false, fmt.Errorf("%w: %q at %s", ErrAgentIDInUse, info.ID, old.Addr)
	}
	return false, nil
}

// revokeQuietly cleans up a lease we failed to use; if it fails the lease expires by itself.
func (c *Client) revokeQuietly(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	if _, err := c.etcd.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		c.log.Warn("revoking unused lease failed; it will expire", "lease", fmt.Sprintf("%x", lease), "error", err)
	}
}

// Done is closed when the lease is lost (expired, revoked, or the session closed): from then on
// the agent leads nothing.
func (s *Session) Done() <-chan struct{} { return s.cs.Done() }

// LeaseID is the session's lease.
func (s *Session) LeaseID() clientv3.LeaseID { return s.cs.Lease() }

// Info is what the session registered.
func (s *Session) Info() AgentInfo { return s.info }

// Close deregisters the agent and revokes its lease, which deletes its registration and every
// leader key it holds in one step. Safe to call twice; a lease that already expired is not an
// error.
func (s *Session) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		// Stop renewing first so that nothing re-extends the lease while it is being revoked.
		s.cs.Orphan()
		s.stopHeartbeat()
		_, err := s.c.etcd.Revoke(ctx, s.LeaseID())
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.closeErr = fmt.Errorf("coord: close session of %q: revoke lease: %w", s.info.ID, err)
			return
		}
		s.c.log.Info("agent deregistered", "agent", s.info.ID)
	})
	return s.closeErr
}

// Abandon stops renewing the lease without revoking it, as a crashed agent would: the registration and
// the leader keys stay until the lease's TTL runs out. For a hard stop (and tests of one); Close is the
// graceful way out.
func (s *Session) Abandon() {
	s.cs.Orphan()
	s.stopHeartbeat()
}

// closed reports whether the lease is known to be gone.
func (s *Session) closed() bool {
	select {
	case <-s.cs.Done():
		return true
	default:
		return false
	}
}

// Leadership is a partition's leadership as Acquire took it.
type Leadership struct {
	Rev   int64 // the leader key's create revision: the fencing epoch every commit compares
	Epoch int32 // the leader epoch clients are told: one more than any before it
}

// EpochHint is what the caller's view says of a partition's leader epoch counter (Cache.EpochHint),
// so that Acquire usually needs one Txn. A stale hint costs one more.
type EpochHint struct {
	Epoch int32 // the counter's value
	Rev   int64 // its key's mod revision; 0 when there is no counter yet
	// Floor is the epoch the partition's newest entry records: a partition written before counters
	// existed starts its counter there, so that clients never see an epoch go back.
	Floor int64
}

// acquireRounds bounds Acquire's Txns when the epoch counter keeps moving under it.
const acquireRounds = 5

// Acquire tries once to become leader of tp. In one Txn it creates the leader key on the session's
// lease (its create revision is the fencing epoch) and increments the partition's leader epoch
// counter, which the key's value carries. The Txn is sent again, within Config.CommitTimeout, while
// attempts time out or find etcd unavailable; and again, with the counter read back, when the hint
// was stale. If this session holds the key already it returns that leadership; if another agent
// does, ErrLeaderHeld naming the holder. It does not check that tp's topic still exists: AcquireTopic
// does, and is what a caller acting on a watched view of the topics uses.
func (s *Session) Acquire(ctx context.Context, tp TP, hint EpochHint) (Leadership, error) {
	return s.acquire(ctx, tp, nil, hint)
}

// AcquireTopic is Acquire of t's partition, provided t still exists: topics/<t.Name> is the key
// created at t.Revision, neither deleted nor created again. A view of the topics lags etcd; a leader
// key taken for a topic deleted meanwhile would let its holder's commits write entries under the
// deleted id. ErrUnknownTopic if t is gone.
func (s *Session) AcquireTopic(ctx context.Context, t Topic, partition int32, hint EpochHint) (Leadership, error) {
	if t.Revision <= 0 || partition < 0 || partition >= t.Partitions {
		return Leadership{}, fmt.Errorf("coord: acquire %s: topic %q at revision %d has %d partitions", t.TP(partition), t.Name, t.Revision, t.Partitions)
	}
	return s.acquire(ctx, t.TP(partition), &topicGuard{key: s.c.keys.topic(t.Name), rev: t.Revision}, hint)
}

// topicGuard is the topic key an acquisition requires, at its create revision.
type topicGuard struct {
	key string
	rev int64
}

func (s *Session) acquire(ctx context.Context, tp TP, guard *topicGuard, hint EpochHint) (Leadership, error) {
	if s.closed() {
		return Leadership{}, ErrSessionClosed
	}
	start := time.Now()
	for range acquireRounds {
		l, next, err := s.acquireOnce(ctx, tp, guard, hint)
		if err != nil || next == nil {
			if err == nil {
				s.c.metrics.leaseAcquire.Observe(time.Since(start).Seconds())
			}
			return l, err
		}
		hint = *next
	}
	return Leadership{}, fmt.Errorf("coord: acquire %s: the leader epoch counter kept changing", tp)
}

// acquireOnce sends one acquisition Txn. A failed compare with no leader key and the topic there
// means the counter moved: it returns the counter it read, to try again with.
func (s *Session) acquireOnce(ctx context.Context, tp TP, guard *topicGuard, hint EpochHint) (Leadership, *EpochHint, error) {
	key, counter := s.c.keys.leader(tp), s.c.keys.epoch(tp)
	epoch := nextEpoch(hint)
	val, _ := json.Marshal(leaderValue{Agent: s.info.ID, Epoch: epoch})
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		clientv3.Compare(clientv3.ModRevision(counter), "=", hint.Rev)}
	gets := []clientv3.Op{clientv3.OpGet(key), clientv3.OpGet(counter)}
	if guard != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(guard.key), "=", guard.rev))
		gets = append(gets, clientv3.OpGet(guard.key))
	}
	// Sent again when an attempt times out or finds etcd unavailable (txnAttempts): an earlier
	// attempt that applied makes the next one fail its compare and read our own key, which counts
	// as held below.
	resp, _, err := s.c.txnAttempts(ctx, txnAcquire, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.c.etcd.Txn(ctx).
			If(cmps...).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(s.LeaseID())),
				clientv3.OpPut(counter, strconv.Itoa(int(epoch)))).
			Else(gets...).
			Commit()
	})
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return Leadership{}, nil, fmt.Errorf("%w: acquire %s: lease gone", ErrSessionClosed, tp)
		}
		return Leadership{}, nil, fmt.Errorf("coord: acquire %s: %w", tp, err)
	}
	if resp.Succeeded {
		// The puts are the Txn's only writes, so the key was created at the Txn's revision.
		s.c.log.Debug("acquired leadership", "tp", tp, "rev", resp.Header.Revision, "epoch", epoch)
		return Leadership{Rev: resp.Header.Revision, Epoch: epoch}, nil, nil
	}
	return s.refused(tp, guard, hint, resp)
}

// refused reads why an acquisition's compare failed from its Else branch: this session holds the key
// already (an earlier attempt applied), another agent does, the topic is gone, or the epoch counter
// moved (then it returns the counter to try again with).
func (s *Session) refused(tp TP, guard *topicGuard, hint EpochHint, resp *clientv3.TxnResponse) (Leadership, *EpochHint, error) {
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		l := parseLeader(kvs[0])
		if clientv3.LeaseID(kvs[0].Lease) == s.LeaseID() {
			return Leadership{Rev: l.rev, Epoch: l.epoch}, nil, nil
		}
		return Leadership{}, nil, fmt.Errorf("%w: %s led by %q (epoch %d)", ErrLeaderHeld, tp, l.agent, l.epoch)
	}
	if guard != nil {
		if kvs := resp.Responses[2].GetResponseRange().GetKvs(); len(kvs) == 0 || kvs[0].CreateRevision != guard.rev {
			return Leadership{}, nil, fmt.Errorf("%w: acquire %s: the topic was deleted", ErrUnknownTopic, tp)
		}
	}
	next := EpochHint{Floor: hint.Floor}
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		n, _ := strconv.ParseInt(string(kvs[0].Value), 10, 32)
		next.Epoch, next.Rev = int32(n), kvs[0].ModRevision
	}
	return Leadership{}, &next, nil
}

// nextEpoch is the leader epoch an acquisition with hint gives: one more than the counter, or than the
// floor when there is no counter yet and the floor fits.
func nextEpoch(h EpochHint) int32 {
	n := int64(h.Epoch)
	if h.Rev == 0 && h.Floor > n && h.Floor < math.MaxInt32 {
		n = h.Floor
	}
	if n >= math.MaxInt32 {
		return 1 // cannot happen: one acquisition a second would take 68 years
	}
	return int32(n + 1)
}

// Resign gives up leadership of tp: it deletes the leader key if and only if it is still the one
// created at epoch. Resigning a leadership already lost is not an error.
func (s *Session) Resign(ctx context.Context, tp TP, epoch int64) error {
	defer s.c.metrics.observeQuery(ctx, opResign, time.Now())
	key := s.c.keys.leader(tp)
	resp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", epoch)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("coord: resign %s: %w", tp, err)
	}
	s.c.log.Debug("resigned leadership", "tp", tp, "epoch", epoch, "held", resp.Succeeded)
	return nil
}
