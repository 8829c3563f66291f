package agent

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// Client quotas on the Kafka path (docs/INTERNALS.md, "Quotas"): a produce's record bytes, and a
// fetch's answered record bytes, are recorded against the quota of the client's (user, client id);
// past it the answer goes out at once with ThrottleMillis and the connection is muted that long:
// nothing more is read from it (KIP-219), so the client's next request waits however it counts.

// throttle returns what records req's bytes against c's quota once it is answered; nil without
// quotas or for other APIs.
func (a *Agent) throttle(c client, req kmsg.Request) func(kmsg.Response) {
	q := a.sec.quotas
	if q == nil {
		return nil
	}
	user := c.sec.who().Name
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		var n int64
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				n += int64(len(p.Records))
			}
		}
		// Recorded, and the connection muted, as the request is admitted, before the next frame
		// is read: a client pipelining produce requests (the agent reads the next while the first
		// waits for its flush) would otherwise have several read before the first answer mutes
		// it, and go over its quota by as many. Kafka reads none while one is processed.
		// The answer tells what is left of the mute when it goes out: a client waits that long
		// after it (KIP-219), so its wait and the mute overlap as they do in Kafka, where both
		// start at the answer.
		now := time.Now()
		d := q.Record(auth.QuotaProduce, user, c.id, n, now)
		c.sec.mute(d)
		return func(resp kmsg.Response) { setThrottle(resp, time.Until(now.Add(d))) }
	case *kmsg.FetchRequest:
		// As Kafka: a fetch takes at most a window's worth of the quota, and one that would go
		// over the quota is answered without records (and without counting them) but with the
		// throttle time, at once.
		if max := q.WindowBytes(auth.QuotaFetch, user, c.id); max > 0 && int64(r.MaxBytes) > max {
			r.MaxBytes = int32(max)
		}
		return func(resp kmsg.Response) {
			fr := resp.(*kmsg.FetchResponse)
			var n int64
			for _, t := range fr.Topics {
				for _, p := range t.Partitions {
					n += int64(len(p.RecordBatches))
				}
			}
			now := time.Now()
			d := q.Record(auth.QuotaFetch, user, c.id, n, now)
			if d > 0 && n > 0 {
				q.Unrecord(auth.QuotaFetch, user, c.id, n, now)
				for i := range fr.Topics {
					for j := range fr.Topics[i].Partitions {
						fr.Topics[i].Partitions[j].RecordBatches = nil
					}
				}
			}
			c.sec.throttled(resp, d)
		}
	}
	return nil
}

// throttled puts d into resp's ThrottleMillis and mutes the connection that long.
func (cs *connSec) throttled(resp kmsg.Response, d time.Duration) {
	setThrottle(resp, d)
	cs.mute(d)
}

// setThrottle puts d into resp's ThrottleMillis unless it holds more.
func setThrottle(resp kmsg.Response, d time.Duration) {
	if d <= 0 {
		return
	}
	if tr, ok := resp.(interface {
		kmsg.ThrottleResponse
		SetThrottle(int32)
	}); ok {
		ms, _ := tr.Throttle()
		tr.SetThrottle(max(ms, int32(d.Milliseconds())))
	}
}

// mute keeps the connection from reading its next frame for d.
func (cs *connSec) mute(d time.Duration) {
	if cs == nil || d <= 0 {
		return
	}
	cs.mu.Lock()
	cs.mutedUntil = max(cs.mutedUntil, time.Now().Add(d).UnixNano())
	cs.mu.Unlock()
}

// awaitUnmuted waits while the connection is muted by a quota; false once ctx ends.
func (cs *connSec) awaitUnmuted(ctx context.Context) bool {
	if cs == nil {
		return true
	}
	cs.mu.Lock()
	until := cs.mutedUntil
	cs.mu.Unlock()
	if d := time.Until(time.Unix(0, until)); until != 0 && d > 0 {
		return sleepCtx(ctx, d)
	}
	return true
}

// beforeRead runs before a connection's next frame is read: after a v0 SaslHandshake it reads and
// answers a bare SASL token (handled). False ends the connection.
func (a *Agent) beforeRead(ctx context.Context, fr *frameReader, cs *connSec, queue chan<- *inflight, log hclog.Logger) (handled, ok bool) {
	if cs.wantsRaw() {
		return true, a.rawSASL(ctx, fr, cs, queue, log)
	}
	return false, true
}
