package agent

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logEvery is how often one kind of rate-limited log line may appear: a flood of bad frames or of
// accept errors must not become a flood of log lines.
const logEvery = 5 * time.Second

// rateLog lets one line of each kind through per interval and counts the lines it holds back, which
// the next line let through reports. Kinds are a fixed set of constants, so its map stays small.
type rateLog struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*rateKind
}

type rateKind struct {
	last       time.Time
	suppressed int
}

func newRateLog(every time.Duration) *rateLog {
	return &rateLog{every: every, now: time.Now, kinds: map[string]*rateKind{}}
}

// allow reports whether a line of kind may be logged now and, if so, how many were held back since
// the last one.
func (r *rateLog) allow(kind string) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kinds[kind]
	if k == nil {
		k = &rateKind{}
		r.kinds[kind] = k
	}
	now := r.now()
	if !k.last.IsZero() && now.Sub(k.last) < r.every {
		k.suppressed++
		return false, 0
	}
	k.last, suppressed, k.suppressed = now, k.suppressed, 0
	return true, suppressed
}

// warnBadFrame logs why a connection is closed for what its client sent, at most once per logEvery:
// one client sending garbage in a loop must not flood the log.
func (a *Agent) warnBadFrame(log hclog.Logger, msg string, args ...any) {
	if ok, suppressed := a.rateLog.allow("frame"); ok {
		log.Warn(msg, append(args, "suppressed", suppressed)...)
	}
}
