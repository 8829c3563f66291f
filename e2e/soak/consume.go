package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readStats is what reading the topic back took.
type readStats struct {
	Records   int64   `json:"records"`
	Bytes     int64   `json:"bytes"` // key and value bytes
	Seconds   float64 `json:"seconds"`
	FetchErrs int64   `json:"fetch_errors"` // errors the consumer reported (and retried or reset past)
	FirstErr  string  `json:"first_fetch_error,omitempty"`
	// StartOffsets and EndOffsets are what ListOffsets answered before the read, summed over partitions.
	StartOffsets int64 `json:"start_offsets"`
	EndOffsets   int64 `json:"end_offsets"`
}

// partRead is one partition's read: where it started and must end, and the next offset to read.
type partRead struct{ start, end, next int64 }

// readBack reads every partition of topic from its log start to the end offset it has when the read
// begins (the producer is done), feeding each record to chk. A partition whose read makes no progress
// for stall is reported incomplete.
func readBack(ctx context.Context, brokers []string, topic string, partitions int32, chk *checker, stall time.Duration) (readStats, error) {
	var st readStats
	parts, err := listOffsets(ctx, brokers, topic, partitions)
	if err != nil {
		return st, err
	}
	offsets := map[int32]kgo.Offset{}
	for p, r := range parts {
		st.StartOffsets, st.EndOffsets = st.StartOffsets+r.start, st.EndOffsets+r.end
		offsets[p] = kgo.NewOffset().At(r.start)
	}
	// Reading below a log start that retention moved meanwhile answers OFFSET_OUT_OF_RANGE: the
	// consumer then resets to the new start, and the records skipped are outside retention.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return st, err
	}
	defer cl.Close()
	rd := &reader{parts: parts, chk: chk, st: &st}
	start, progress := time.Now(), time.Now()
	for rd.remaining() > 0 && time.Since(progress) < stall {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if rd.take(fs) {
			progress = time.Now()
		}
	}
	st.Seconds = time.Since(start).Seconds()
	for p := range partitions {
		if pr := parts[p]; pr.next < pr.end {
			chk.incomplete(p, pr.next, pr.end)
		}
	}
	return st, nil
}

// reader follows the read of every partition.
type reader struct {
	parts map[int32]*partRead
	chk   *checker
	st    *readStats
}

// remaining is the number of partitions not read to their end.
func (rd *reader) remaining() int {
	n := 0
	for _, pr := range rd.parts {
		if pr.next < pr.end {
			n++
		}
	}
	return n
}

// take checks the records of one poll and counts its errors; it reports whether any record was new.
func (rd *reader) take(fs kgo.Fetches) bool {
	fs.EachError(func(_ string, _ int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) {
			return // the poll's own timeout
		}
		rd.st.FetchErrs++
		if rd.st.FirstErr == "" {
			rd.st.FirstErr = err.Error()
		}
	})
	progress := false
	fs.EachRecord(func(r *kgo.Record) {
		pr, ok := rd.parts[r.Partition]
		if !ok || r.Offset >= pr.end {
			return // written after the read began: nothing the check expects
		}
		progress = true
		rd.st.Records++
		rd.st.Bytes += int64(len(r.Key) + len(r.Value))
		rd.chk.observe(r.Partition, r.Offset, r.Key, r.Value)
		pr.next = max(pr.next, r.Offset+1)
	})
	return progress
}

// listOffsets asks for every partition's log start and end offset.
func listOffsets(ctx context.Context, brokers []string, topic string, partitions int32) (map[int32]*partRead, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	parts := map[int32]*partRead{}
	for p := range partitions {
		s, okS := starts.Lookup(topic, p)
		e, okE := ends.Lookup(topic, p)
		if !okS || !okE {
			return nil, fmt.Errorf("partition %d: no start or end offset listed", p)
		}
		parts[p] = &partRead{start: s.Offset, end: e.Offset, next: s.Offset}
	}
	return parts, nil
}
