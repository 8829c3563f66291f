package coord

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// changer is a view whose changes the test makes.
type changer struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changer) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

func (c *changer) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
}

// WaitFor asks again at each change until the answer is true, and gives the last answer when its
// context ends first.
func TestWaitFor(t *testing.T) {
	t.Parallel()
	v := &changer{ch: make(chan struct{})}
	var value atomic.Int64
	asked := make(chan int64)
	got := make(chan bool)
	go func() {
		got <- WaitFor(context.Background(), v, func() bool {
			n := value.Load()
			asked <- n
			return n == 2
		})
	}()
	for want := int64(0); want <= 2; want++ {
		if n := <-asked; n != want {
			t.Fatalf("asked at %d, want %d", n, want)
		}
		if want < 2 {
			value.Add(1)
			v.fire()
		}
	}
	if !<-got {
		t.Fatal("WaitFor returned false once done held")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if WaitFor(ctx, v, func() bool { return false }) {
		t.Fatal("WaitFor returned true though done never held")
	}
}
