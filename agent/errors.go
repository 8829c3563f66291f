package agent

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/agent/internal/lifecycle"
	"github.com/streamhouse/streamhouse/coord"
)

// Conditions the produce and fetch paths act on. kafkaCode is the one place that maps internal
// errors to Kafka error codes.
var (
	errNotLeader    = errors.New("agent: not the partition leader")
	errShuttingDown = errors.New("agent: shutting down")
	errStorage      = errors.New("agent: object store or etcd unavailable")
	// errCommitUnknown: an index commit whose outcome is unknown; it may have applied.
	errCommitUnknown = errors.New("agent: commit outcome unknown")
	// errNotOwnObject: an agent forwarded an extent of an object it did not write.
	errNotOwnObject = errors.New("agent: forwarded extent is not in an object of the forwarding agent")
)

// kafkaCode maps an error of the produce or fetch path to the Kafka error a client should see.
// Failures of S3 or etcd are KAFKA_STORAGE_ERROR, which every client retries.
func kafkaCode(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, errCommitUnknown), errors.Is(err, errForwardUnanswered):
		return kerr.RequestTimedOut.Code // maybe written: clients retry, and must not report it failed
	case errors.Is(err, errNotLeader), errors.Is(err, errShuttingDown), errors.Is(err, coord.ErrFenced),
		errors.Is(err, coord.ErrSessionClosed), errors.Is(err, coord.ErrLeaderHeld), errors.Is(err, errForwardFailed):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, coord.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, lifecycle.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, errNotOwnObject):
		return kerr.InvalidRequest.Code
	case errors.Is(err, kwire.ErrBatchMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, kwire.ErrBatchCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, kwire.ErrBatchCount), errors.Is(err, kwire.ErrBatchTransactional), errors.Is(err, kwire.ErrBatchControl),
		errors.Is(err, kwire.ErrBatchInvalid):
		return kerr.InvalidRecord.Code
	case errors.Is(err, kwire.ErrBatchTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, kwire.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	default:
		return kerr.KafkaStorageError.Code
	}
}

// errName is the Kafka name of an error code, for metric labels and logs.
func errName(code int16) string {
	var ke *kerr.Error
	if errors.As(kerr.ErrorForCode(code), &ke) {
		return ke.Message
	}
	return "UNKNOWN_SERVER_ERROR"
}

// errUnknownTopic and errUnknownTopicID answer a topic this agent does not know (or whose group it does
// not serve), by name or by id.
func errUnknownTopic(name string) error {
	return adminErrorf(kerr.UnknownTopicOrPartition, "unknown topic %s", quoteShort(name))
}

func errUnknownTopicID(id [16]byte) error {
	return adminErrorf(kerr.UnknownTopicID, "unknown topic id %s", coord.TopicID(id))
}
