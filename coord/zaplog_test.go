package coord

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
)

func bufferLogger(level hclog.Level) (hclog.Logger, *syncBuffer) {
	out := &syncBuffer{}
	return hclog.New(&hclog.LoggerOptions{Output: out, Level: level}), out
}

// Embedded etcd's own log lines reach the logger it is given: before, its zap logger was a Nop, and
// the line saying why etcd gave up (and took `streamhouse dev` with it) was lost.
func TestEmbeddedEtcdLogsReachLogger(t *testing.T) {
	log, out := bufferLogger(hclog.Debug)
	e, err := StartEmbedded(testCtx(t), EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		Logger: log, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if !strings.Contains(out.String(), "serving client traffic") {
		t.Fatalf("no line of etcd's own in the log:\n%s", out.String())
	}
}

// At warn, etcd's info chatter is dropped and its warnings and errors go through with their fields;
// the warning every embedded single-member etcd gives at start, and the errors of its servers being
// closed, are demoted to debug.
func TestZapToHclogLevels(t *testing.T) {
	t.Parallel()
	log, out := bufferLogger(hclog.Warn)
	z := zapToHclog(log).Named("raft").With(zap.String("member", "dev"))
	z.Info("became leader")
	z.Warn("slow fdatasync", zap.Duration("took", 0))
	z.Error("failed to write WAL", zap.Error(bytes.ErrTooLarge))
	z.Warn("Running http and grpc server on single port. This is not recommended for production.")
	z.Error("setting up serving from embedded etcd failed.", zap.String("error", "accept tcp 127.0.0.1:2379: use of closed network connection"))
	got := out.String()
	for _, want := range []string{"[WARN]  slow fdatasync: component=raft member=dev took=0s",
		"[ERROR] failed to write WAL: component=raft error=\"bytes.Buffer: too large\" member=dev"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"became leader", "single port", "setting up serving"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("log has %q at warn:\n%s", unwanted, got)
		}
	}
}
