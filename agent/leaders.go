package agent

import (
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// partitionLeader is this agent's sequencing state for one partition it leads. Only the sequencer
// goroutine touches next and producers once the leader is installed.
type partitionLeader struct {
	tp          coord.TP
	topic       string
	epoch       int64 // fencing: the leader key's create revision
	clientEpoch int32 // the leader epoch clients are told, recorded in entries
	next        int64
	producers   map[int64]coord.ProducerState
	expired     time.Time // when producers was last swept of idle producers
}

// leaderSet is the partitions this agent leads, read by produce handlers and the sequencer.
type leaderSet struct {
	mu    sync.RWMutex
	m     map[coord.TP]*partitionLeader
	added chan struct{} // closed and replaced when a partition is added; nil until someone waits
}

// add makes pl tp's leader unless tp has one, and returns how many partitions are led.
func (s *leaderSet) add(tp coord.TP, pl *partitionLeader) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[tp] == nil {
		s.m[tp] = pl
		if s.added != nil {
			close(s.added)
			s.added = nil
		}
	}
	return len(s.m)
}

// addedChan is closed when a partition is next added.
func (s *leaderSet) addedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.added == nil {
		s.added = make(chan struct{})
	}
	return s.added
}

func (s *leaderSet) get(tp coord.TP) *partitionLeader {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[tp]
}

// remove drops tp's leader if it is still the one of epoch (each acquisition of a partition's
// leader key has its own create revision) and returns it.
func (s *leaderSet) remove(tp coord.TP, epoch int64) *partitionLeader {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.m[tp]
	if cur == nil || cur.epoch != epoch {
		return nil
	}
	delete(s.m, tp)
	return cur
}

func (s *leaderSet) snapshot() []*partitionLeader {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*partitionLeader, 0, len(s.m))
	for _, pl := range s.m {
		out = append(out, pl)
	}
	return out
}
