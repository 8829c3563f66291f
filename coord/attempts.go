package coord

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Pauses between attempts of a Txn that failed at once (no connection, no leader yet).
const (
	minAttemptBackoff = 50 * time.Millisecond
	maxAttemptBackoff = 500 * time.Millisecond
)

// What txnAttempts runs, named in its logs: index commits (also counted in
// streamhouse_etcd_txns_total), group writes, leader-key acquisitions and maintenance writes.
const (
	txnCommit     = "commit"
	txnGroupWrite = "group write"
	txnAcquire    = "acquire"
	txnMaintain   = "maintenance write"
	// txnCommitRead reads, at a failed commit Txn's revision, what its compares looked at
	// (readFailed). Read-only: sending it again changes nothing.
	txnCommitRead = "commit failure read"
)

// txnAttempts runs do, one Txn, in attempts: each has a deadline (CommitAttemptTimeout, doubled
// after each attempt that reached it), and one that timed out or failed in a way that says nothing
// about the Txn is sent again, until CommitTimeout is spent or ctx ends. It returns the last attempt's
// answer and how many attempts were made. what names the Txn (txnCommit…).
//
// Why: etcd holds a Txn that a member forwarded to a leader that died until its own request timeout,
// 5 s + 2 × the election timeout, whereas a new leader is elected within about 2 election timeouts
// and would apply the same Txn at once. An agent's commits are serial, so every partition it leads
// waits for that answer.
//
// Only a Txn that cannot apply twice, or whose second application changes nothing, may be sent
// again, and its caller must tell from a failed compare whether an earlier attempt applied:
//   - a commit compares each index key's CreateRevision with 0, so once one attempt applied every
//     other fails its compare, one still queued in etcd included; and a failed compare reads back
//     what it saw, at its revision (see readFailed, sortFenced);
//   - a group write compares the group's version key with the version it was built on and writes
//     its own token there (see WriteGroup);
//   - a leader-key acquisition creates the key only if absent and recognises its own lease (Acquire);
//   - a maintenance write puts and deletes the same keys again, to the same values (fencedWrite);
//   - a commit's failure read only reads (readFailed).
//
// An attempt abandoned here may still apply later, so the caller must treat a final error as an
// unknown outcome, exactly like a single attempt's.
func (c *Client) txnAttempts(ctx context.Context, what string, do func(context.Context) (*clientv3.TxnResponse, error)) (resp *clientv3.TxnResponse, attempts int, err error) {
	start := time.Now()
	giveUp := start.Add(c.cfg.CommitTimeout)
	timeout := c.cfg.CommitAttemptTimeout
	backoff := minAttemptBackoff
	for attempts = 1; ; attempts++ {
		deadline := time.Now().Add(timeout)
		if deadline.After(giveUp) {
			deadline = giveUp
		}
		actx, cancel := context.WithDeadline(ctx, deadline)
		if hook := c.hook(what); hook != nil {
			resp, err = hook(actx, attempts, do)
		} else {
			resp, err = do(actx)
		}
		expired := errors.Is(actx.Err(), context.DeadlineExceeded)
		cancel()
		if err == nil || ctx.Err() != nil || !retryableTxnError(err, expired) || !time.Now().Before(giveUp) {
			return resp, attempts, err
		}
		if what == txnCommit {
			c.metrics.txns.WithLabelValues(resultError).Inc()
		}
		c.metrics.retries.Inc()
		if expired {
			c.log.Warn("etcd Txn timed out; sending it again", "txn", what, "attempt", attempts, "timeout", timeout,
				"elapsed", time.Since(start).Round(time.Millisecond), "error", err)
			timeout *= 2
			continue
		}
		c.log.Debug("etcd Txn failed; sending it again", "txn", what, "attempt", attempts, "error", err)
		t := time.NewTimer(min(backoff, time.Until(giveUp)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return resp, attempts, err
		}
		backoff = min(2*backoff, maxAttemptBackoff)
	}
}

// retryableTxnError tells whether a Txn that failed with err is worth sending again: its
// attempt's deadline passed, or etcd was unavailable (no connection, no leader, its own request
// timeout, a leader change, a dropped proposal, too many requests). Other errors (a Txn too large
// or malformed, say) would fail the same way again.
func retryableTxnError(err error, expired bool) bool {
	if expired {
		return true
	}
	if errors.Is(err, rpctypes.ErrTooManyRequests) {
		return true
	}
	code := status.Code(err) // a gRPC error the client passed on as it was
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) { // one of etcd's errors, as the client translates them
		code = ee.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Unknown: // Unknown: "raft proposal dropped"
		return true
	}
	return false
}

// hook is the test hook that runs the attempts of what: readHook for a commit's failure read,
// txnHook for every write.
func (c *Client) hook(what string) func(context.Context, int, func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
	if what == txnCommitRead {
		return c.readHook
	}
	return c.txnHook
}
