package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/internal/future"
	"github.com/streamhouse/streamhouse/segstore"
)

// A leader sequences a forwarded append only once it has checked it against the bytes: an extent of
// an object the calling agent wrote (its key ends in the caller's authenticated id), read back with
// its CRC, and a batch the Produce validator accepts. What the sequencer takes from it (record count,
// producer id, epoch and sequence, max timestamp) is the validator's. docs/INTERNALS.md says what
// this costs a forward.

// checkForwarded makes caller's appends pending appends for the sequencer. One that fails a check is
// answered at once: its result is set to the refusal.
func (a *Agent) checkForwarded(ctx context.Context, caller string, xs []seqAppend) []*pendingAppend {
	out := make([]*pendingAppend, len(xs))
	byObject := map[string][]*pendingAppend{}
	var objects []string
	for i, x := range xs {
		t, ok := a.cache.TopicByID(x.Topic)
		switch owner, _ := segstore.ObjectAgent(x.Object); {
		case !ok || x.Partition >= t.Partitions:
			out[i] = &pendingAppend{res: future.Resolved[int64](-1, kerr.UnknownTopicOrPartition)}
		case owner != caller:
			a.metrics.trust.forwardRefused.WithLabelValues("not_own_object").Inc()
			out[i] = &pendingAppend{res: future.Resolved[int64](-1, fmt.Errorf("%w: %s from %s", errNotOwnObject, x.Object, caller))}
		default:
			p := &pendingAppend{tp: coord.TP{Topic: x.Topic, Partition: x.Partition}, topic: t.Name, object: x.Object,
				extent: segstore.Extent{TopicID: x.Topic, Partition: x.Partition, Pos: x.Pos, Len: x.Len, CRC: x.CRC},
				txnRev: x.TxnRev, res: future.Make[int64]()}
			if byObject[x.Object] == nil {
				objects = append(objects, x.Object)
			}
			byObject[x.Object] = append(byObject[x.Object], p)
			out[i] = p
		}
	}
	for _, o := range objects {
		a.checkExtents(ctx, caller, byObject[o])
	}
	return out
}

// checkExtents reads the extents of ps, all of one object, and validates each as a produce batch,
// setting its meta from the bytes or refusing it.
func (a *Agent) checkExtents(ctx context.Context, caller string, ps []*pendingAppend) {
	xs := make([]coord.Extent, len(ps))
	for i, p := range ps {
		xs[i] = coord.Extent{Object: p.object, Pos: p.extent.Pos, Len: p.extent.Len, CRC: p.extent.CRC}
	}
	data, errs := a.reader.ReadObject(ctx, xs)
	for i, p := range ps {
		err := errs[i]
		if err == nil {
			p.meta, err = a.parseBatch(data[i])
			logAppendTimeOf(data[i], &p.meta)
		}
		if err == nil {
			err = checkForwardedTxn(p)
		}
		if err == nil {
			continue
		}
		reason := "invalid_batch"
		switch {
		case errors.Is(err, segstore.ErrCorrupt):
			err = fmt.Errorf("%w: %w", kwire.ErrBatchCorrupt, err)
		case kafkaCode(err) == kerr.KafkaStorageError.Code, errors.Is(err, context.Canceled):
			reason, err = "read_failed", fmt.Errorf("%w: %w", errStorage, err)
		}
		a.metrics.trust.forwardRefused.WithLabelValues(reason).Inc()
		a.log.Warn("refused a forwarded batch", "agent", caller, "object", p.object, "pos", p.extent.Pos,
			"len", p.extent.Len, "reason", reason, "error", err)
		p.res = future.Resolved[int64](-1, err)
	}
}
