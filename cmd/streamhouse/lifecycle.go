package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamhouse/streamhouse/agent"
)

// Time limits of the server commands.
const (
	shutdownTimeout = agent.DefaultShutdownTimeout // graceful stop; systemd's TimeoutStopSec is longer
	closeGrace      = 5 * time.Second              // after which a Shutdown that ignores its deadline is cut short by Close
)

// newRegistry is an agent's own registry (never the default one: embedded etcd uses that) with the Go
// runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// server is what serve needs of an agent.
type server interface {
	Done() <-chan struct{}
	Err() error
	Shutdown(ctx context.Context) error
	Close() error
}

var _ server = (*agent.Agent)(nil)

// startup returns the context for starting servers: a signal cancels it while they start. The returned
// function ends that watch (and reports whether a signal came), after which the context stays live for
// good, since a server may tie its lifetime to the context it was started with.
func (c *cli) startup() (context.Context, func() (interrupted bool)) {
	ctx, cancel := context.WithCancel(context.Background())
	quit, done := make(chan struct{}), make(chan bool, 1)
	go func() {
		select {
		case <-c.signals:
			cancel()
			done <- true
		case <-quit:
			done <- false
		}
	}()
	return ctx, func() bool { close(quit); return <-done }
}

// errInterrupted is returned when a signal stops start-up.
var errInterrupted = errors.New("interrupted")

// waitSignal blocks until SIGINT or SIGTERM.
func (c *cli) waitSignal(log hclog.Logger) {
	sig := <-c.signals
	log.Info("stopping", "signal", sig.String())
}

// serve runs until the first signal, or until an agent stops by itself, then shuts every agent down
// gracefully; a second signal, or a Shutdown that overruns its deadline, closes them at once.
func serve[S server](c *cli, log hclog.Logger, agents []S) error {
	stopped := make(chan S, len(agents))
	for _, a := range agents {
		go func() { <-a.Done(); stopped <- a }()
	}
	var cause error
	select {
	case sig := <-c.signals:
		log.Info("shutting down", "signal", sig.String(), "timeout", shutdownTimeout)
	case a := <-stopped:
		cause = a.Err()
		log.Error("agent stopped", "error", cause)
	}
	err := shutdown(c, log, agents)
	if cause != nil {
		// The stopped agent's Shutdown may repeat its error; the cause alone says it.
		return fmt.Errorf("agent stopped: %w", cause)
	}
	return err
}

func shutdown[S server](c *cli, log hclog.Logger, agents []S) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() { errs[i] = a.Shutdown(ctx) })
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case sig := <-c.signals:
		log.Warn("second signal: stopping at once", "signal", sig.String())
		closeAll(agents)
	case <-time.After(shutdownTimeout + closeGrace):
		log.Warn("graceful shutdown overran its deadline: stopping at once")
		closeAll(agents)
	}
	<-finished
	closeAll(agents) // Close is safe after Shutdown and releases whatever an interrupted Shutdown left
	return errors.Join(errs...)
}

func closeAll[S server](agents []S) {
	for _, a := range agents {
		_ = a.Close()
	}
}
