package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	termprogress "github.com/streamhouse/streamhouse/internal/progress"
)

// steps shows, on a terminal, how long the step under way has run: a suite's runs take minutes each,
// and a line printed when one starts says nothing about whether it still moves. Off a terminal it
// shows nothing and the step lines alone are printed.
type steps struct {
	line *termprogress.Line
	mu   sync.Mutex
	stop chan struct{} // closes the ticking of the step under way; nil: none
	done chan struct{} // closed once that ticking has stopped
}

var suiteSteps = &steps{line: termprogress.New(os.Stderr)}

// begin prints the step's line and, on a terminal, ticks its running time below it.
func (s *steps) begin(msg string) {
	s.end()
	fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(suiteStart).Seconds(), msg)
	if !s.line.On() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stop, done, start := make(chan struct{}), make(chan struct{}), time.Now()
	s.stop, s.done = stop, done
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			s.line.Set("  … %s running for %s", msg, time.Since(start).Round(time.Second))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
}

// end stops the ticking of the step under way and clears its line; safe to call when none runs.
func (s *steps) end() {
	s.mu.Lock()
	stop, done := s.stop, s.done
	s.stop, s.done = nil, nil
	s.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	s.line.Clear()
}
