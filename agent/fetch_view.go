package agent

import (
	"context"
	"time"
)

// viewCheckTimeout bounds how long a fetch waits to learn whether this agent's view of etcd is
// current; an agent cut off from etcd answers OFFSET_NOT_AVAILABLE after it.
const viewCheckTimeout = 2 * time.Second

// viewCheck says, at most once per fetch response, whether this agent's cached view of etcd is
// current. The view lags etcd by a watch's delay, and by much more when the agent was just started or
// is cut off from etcd; so an offset past the view's high watermark may be one another agent already
// served. Before such an offset is called out of range — which consumers take as lost data, and
// rewind — the view must have caught up with etcd's current revision.
type viewCheck struct {
	a       *Agent
	checked bool
	current bool
}

func (a *Agent) newViewCheck() *viewCheck { return &viewCheck{a: a} }

// isCurrent reports whether the view has caught up with etcd's revision as of the first call.
func (v *viewCheck) isCurrent(ctx context.Context) bool {
	if !v.checked {
		v.checked, v.current = true, v.a.catchUp(ctx)
	}
	return v.current
}

// catchUp waits until the cache reflects etcd's current revision; false if etcd cannot be read or the
// cache does not get there within viewCheckTimeout.
func (a *Agent) catchUp(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, viewCheckTimeout)
	defer cancel()
	rev, err := a.etcd.Revision(ctx)
	if err != nil {
		return false
	}
	return a.cache.WaitRevision(ctx, rev) == nil
}
