package agent

import (
	"context"
	"errors"
	"math"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// Fetch: v0-16
//
// Any agent serves any partition, from the index cached in memory and the extents it reads from S3
// (cached). Batches go out as they were produced, with only their base offset and leader epoch
// patched. A fetch at the log end waits up to MaxWaitMillis (capped at --fetch-max-wait) for MinBytes
// and is woken by the commit that advances the partition, not by a timer. A fetch waits for object
// store reads until its MaxWait plus Config.FetchReadTimeout, then answers with what it has read, in
// order, possibly nothing: a consumer catching up over many small objects would otherwise wait for
// thousands of GETs, past its own request timeout. Its reads go on into the cache, where the
// consumer's next fetch finds them. Fetch sessions (v7+) are not kept: SessionID is always 0, so
// clients send full fetches.
//
// Version notes:
// * v3: MaxBytes (response-level limit); the first batch is returned even when larger (KIP-74)
// * v4: IsolationLevel, LastStableOffset, AbortedTransactions (read_committed with Config.Transactions;
//   without, the LSO is the high watermark)
// * v5: LogStartOffset
// * v7: fetch sessions (KIP-227)
// * v11: RackID (KIP-392), PreferredReadReplica
// * v12: flexible versions
// * v13: topic ids instead of names
// * v15-16: ReplicaState, NodeEndpoints (unused by consumers)

// handleFetch answers a fetch, long-polling at the log end.
func (a *Agent) handleFetch(ctx context.Context, c client, req *kmsg.FetchRequest) kmsg.Response {
	cz := clientZone(c.id, req.Rack)
	resp := a.longPoll(ctx, req, cz)
	n := 0
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			n += len(p.RecordBatches)
		}
	}
	a.countClientRecords("out", cz, n)
	return resp
}

// longPoll answers a fetch once it has MinBytes, its MaxWait (at most --fetch-max-wait) is over, or
// waiting cannot help. Reads from the object store stop being waited for FetchReadTimeout after the
// MaxWait (readCtx).
func (a *Agent) longPoll(ctx context.Context, req *kmsg.FetchRequest, cz string) *kmsg.FetchResponse {
	wait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	if wait > a.cfg.FetchMaxWait {
		wait = a.cfg.FetchMaxWait
		a.limitHit(limitFetchMaxWait)
	}
	deadline := time.Now().Add(wait)
	readCtx, cancel := context.WithDeadline(ctx, deadline.Add(a.cfg.FetchReadTimeout))
	defer cancel()
	for {
		waits := a.fetchWaits(req)
		resp, bytes, final := a.fillFetch(readCtx, req, cz)
		// A shutdown answers long-polls at once, so that it need not wait out their MaxWait.
		if final || bytes >= int64(max(req.MinBytes, 1)) || !time.Now().Before(deadline) || a.stopping.Load() {
			return resp
		}
		woken := waitAny(ctx, waits, deadline)
		if !woken && ctx.Err() != nil {
			return resp
		}
		kwire.ReleaseRecords(resp) // not sent: a new answer replaces it
		if !woken {
			resp, _, _ = a.fillFetch(readCtx, req, cz)
			return resp
		}
	}
}

// fetchWaits returns the channels that close when any requested partition advances. They are taken
// before reading, so that a commit landing between the read and the wait is not missed.
func (a *Agent) fetchWaits(req *kmsg.FetchRequest) []<-chan struct{} {
	out := []<-chan struct{}{a.draining}
	for i := range req.Topics {
		t, ok := a.fetchTopic(req, &req.Topics[i])
		if !ok {
			continue
		}
		for j := range req.Topics[i].Partitions {
			p := req.Topics[i].Partitions[j].Partition
			if p >= 0 && p < t.Partitions {
				out = append(out, a.cache.Wait(coord.TP{Topic: t.ID, Partition: p}))
			}
		}
	}
	return out
}

func (a *Agent) fetchTopic(req *kmsg.FetchRequest, rt *kmsg.FetchRequestTopic) (coord.Topic, bool) {
	var t coord.Topic
	var ok bool
	if req.Version >= 13 {
		t, ok = a.cache.TopicByID(coord.TopicID(rt.TopicID))
	} else {
		t, ok = a.cache.Topic(rt.Topic)
	}
	return t, ok && a.servesTopic(t)
}

// fillFetch builds one fetch response, for a client of zone cz, from what is committed now. final is set
// when waiting could not change the answer (an error to report, a client to send elsewhere).
func (a *Agent) fillFetch(ctx context.Context, req *kmsg.FetchRequest, cz string) (*kmsg.FetchResponse, int64, bool) {
	a.prefetch(req, cz)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	budget := int64(math.MaxInt32)
	if req.Version >= 3 && req.MaxBytes > 0 {
		budget = int64(req.MaxBytes)
	}
	var total int64
	final := false
	view := a.newViewCheck()
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		t, known := a.fetchTopic(req, rt)
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case !known && req.Version >= 13:
				sp.ErrorCode = kerr.UnknownTopicID.Code
			case !known || rp.Partition < 0 || rp.Partition >= t.Partitions:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case a.redirectRead(req, cz, &sp, coord.TP{Topic: t.ID, Partition: rp.Partition}):
				final = true // answer now: the client goes to its own zone's agent
			default:
				limit := min(int64(max(rp.PartitionMaxBytes, 0)), budget-total)
				n, err := a.fetchPartition(ctx, &sp, coord.TP{Topic: t.ID, Partition: rp.Partition}, rp.FetchOffset, limit, total == 0, view)
				if req.IsolationLevel == 1 && err == nil {
					n = a.readCommitted(&sp, coord.TP{Topic: t.ID, Partition: rp.Partition}, rp.FetchOffset) // txn_fetch.go
				}
				total += n
				sp.ErrorCode = kafkaFetchCode(err)
			}
			if sp.ErrorCode != 0 {
				final = true
			}
			if sp.RecordBatches == nil {
				sp.RecordBatches = []byte{} // an empty record set, never a null one: librdkafka rejects null
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, total, final
}

// redirectRead sends a client of another zone to an agent of its own (KIP-392's preferred read
// replica: any agent serves any partition), so that record bytes do not cross zones. It fills sp and
// reports true when it does; a zone without a live agent is served here, and counted.
//
// An agent shutting down sends every client elsewhere the same way, so that consumers move before it
// closes their connections rather than after (a closed connection costs a client a metadata refresh).
func (a *Agent) redirectRead(req *kmsg.FetchRequest, cz string, sp *kmsg.FetchResponseTopicPartition, tp coord.TP) bool {
	if req.Version < 11 {
		return false
	}
	var to string
	switch {
	case a.stopping.Load():
		id, ok := a.readReplicaElsewhere(cz, tp)
		if !ok {
			return false
		}
		to = id
	case cz == "" || a.cfg.AZ == "" || cz == a.cfg.AZ:
		return false
	default:
		ag, ok := a.inZoneReplica(cz, tp)
		if !ok {
			a.metrics.zones.fallbacks.Inc()
			return false
		}
		to = ag.ID
	}
	hwm := a.cache.HighWatermark(tp)
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hwm, hwm, a.cache.LogStart(tp)
	if req.IsolationLevel == 1 {
		sp.LastStableOffset = a.lastStable(tp, hwm) // txn_fetch.go
	}
	sp.PreferredReadReplica = a.nodeID(to)
	return true
}

// readReplicaElsewhere is an agent other than this one to read tp from: of the client's zone if it
// has one, else of this agent's.
func (a *Agent) readReplicaElsewhere(cz string, tp coord.TP) (string, bool) {
	if cz == "" {
		cz = a.cfg.AZ
	}
	if ag, ok := a.inZoneReplica(cz, tp); ok && ag.ID != a.cfg.ID {
		return ag.ID, true
	}
	return a.otherAgent()
}

// fetchPartition fills sp with the batches of tp from offset, up to limit bytes (or the first batch
// whatever its size when first is set, as Kafka does so that a consumer can always make progress).
// An offset past the view's high watermark is out of range only once view says the view is current.
func (a *Agent) fetchPartition(ctx context.Context, sp *kmsg.FetchResponseTopicPartition, tp coord.TP, offset, limit int64, first bool, view *viewCheck) (int64, error) {
	hwm, start := a.cache.HighWatermark(tp), a.cache.LogStart(tp)
	if offset > hwm && view.isCurrent(ctx) {
		hwm, start = a.cache.HighWatermark(tp), a.cache.LogStart(tp)
	}
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hwm, hwm, start
	switch {
	case offset < start:
		return 0, kerr.OffsetOutOfRange
	case offset > hwm && !view.isCurrent(ctx):
		return 0, kerr.OffsetNotAvailable // the view may lag: the client retries
	case offset > hwm:
		return 0, kerr.OffsetOutOfRange
	}
	if offset == hwm || (limit <= 0 && !first) {
		return 0, nil
	}
	entries := a.cache.Entries(tp, offset, max(limit, 1))
	// One allocation for the response's records, rather than one per doubling as they are appended.
	var size int64
	for _, e := range entries {
		size += e.Bytes
	}
	records := kwire.GetRecordsBuf(min(size, max(limit, 0)))
	for _, e := range entries {
		var stop bool
		var err error
		if e.Segment != nil {
			records, first, stop, err = a.fetchSegment(ctx, e, offset, limit, first, records)
		} else if e.Marker != nil {
			records, first, stop = fetchMarker(e, offset, limit, first, records)
		} else {
			records, first, stop, err = a.fetchExtents(ctx, e, offset, limit, first, records)
		}
		if err != nil && len(records) == 0 {
			return 0, err
		}
		if stop || err != nil {
			// Serve what was read, maybe nothing; the consumer comes back for the rest, which its reads
			// meanwhile bring to the cache.
			return a.served(sp, records), nil
		}
	}
	return a.served(sp, records), nil
}

// fetchExtents appends to records the batches of uncompacted entry e from offset, their offsets and
// leader epoch patched in, within limit bytes (or the first extent whatever its size, when first is
// set and nothing is read yet). The limit is checked before each read: an extent that will not be
// served is not waited for. stop is set when the answer is complete: the limit is reached or a read
// cannot be waited for.
func (a *Agent) fetchExtents(ctx context.Context, e coord.IndexEntry, offset, limit int64, first bool, records []byte) (out []byte, stillFirst, stop bool, err error) {
	base := e.BaseOffset
	for _, x := range e.Extents {
		if int64(len(records))+int64(x.Len) > limit && (len(records) > 0 || !first) {
			return records, first, true, nil
		}
		data, short, err := a.fetchRead(ctx, x, len(records) == 0)
		if short || err != nil {
			return records, first, true, err
		}
		n, from := len(records), max(base, offset)
		if records, base, err = kwire.PatchBatches(records, data, base, int32(e.Epoch), offset); err != nil {
			a.metrics.corruptExtents.Inc()
			a.log.Error("stored extent has broken batch framing; not served", "object", x.Object, "pos", x.Pos, "error", err)
			return records[:n], first, true, err
		}
		if len(records) > n {
			first = false
			a.metrics.fetchRecords.Add(float64(base - from))
		}
	}
	return records, first, false, nil
}

// fetchRead reads extent x for a fetch, whose answer so far is empty or not. short is set when the
// fetch's read bound (ctx's deadline), or the client leaving, ended the wait.
func (a *Agent) fetchRead(ctx context.Context, x coord.Extent, empty bool) (data []byte, short bool, err error) {
	if empty && !a.reader.Cacheable(x) {
		// Read again by every fetch, it would never be served if its GET outlasted the read bound:
		// the first one is waited for (its GET has a timeout of its own).
		ctx = context.WithoutCancel(ctx)
	}
	data, err = a.reader.Extent(ctx, x)
	if err != nil && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			a.metrics.reads.timeouts.Inc()
		}
		return nil, true, nil
	}
	return data, false, err
}

// served puts records into the partition's response and counts them. records is a buffer of the
// response's own (kwire.ReleaseRecords gives it back).
func (a *Agent) served(sp *kmsg.FetchResponseTopicPartition, records []byte) int64 {
	sp.RecordBatches = records
	a.metrics.fetchBytes.Add(float64(len(records)))
	return int64(len(records))
}

// kafkaFetchCode maps a fetch error: anything from storage is KAFKA_STORAGE_ERROR, which consumers retry.
func kafkaFetchCode(err error) int16 {
	if err == nil {
		return 0
	}
	return kafkaCode(err)
}

// waitAny waits until one of chans is closed (true), or the deadline passes or ctx ends (false).
func waitAny(ctx context.Context, chans []<-chan struct{}, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
	for _, ch := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 2
}
