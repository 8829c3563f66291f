package agent

import (
	"fmt"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// Nothing a client sends may crash the process (in dev mode etcd and S3 would go with it): every
// request is decoded and handled under a recover. A panic is a bug; it closes the connection of the
// request that found it, as a malformed request does, and leaves every other connection be.

// requestPanicked counts a panic of request req and logs it with its stack, at most once per logEvery
// (the panics held back are counted in the next line).
func (a *Agent) requestPanicked(r any, req kmsg.Request) {
	a.metrics.requestPanics.Inc()
	if ok, suppressed := a.rateLog.allow("panic"); ok {
		api := "request decoding"
		if req != nil {
			api = kmsg.NameForKey(req.Key())
		}
		a.log.Error("request handler panicked; its connection is closed", "api", api, "panic", fmt.Sprint(r),
			"suppressed", suppressed, "stack", string(debug.Stack()))
	}
}

// parseRequestSafely is kwire.ParseRequest, with a panic of the decoder reported as a malformed frame.
func (a *Agent) parseRequestSafely(body []byte) (h kwire.Header, req kmsg.Request, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.requestPanicked(r, nil)
			req, err = nil, fmt.Errorf("%w: decoding panicked: %v", kwire.ErrFrame, r)
		}
	}()
	return kwire.ParseRequest(body, servedVersions{txn: a.txns != nil})
}
