package future

import (
	"context"
	"errors"
	"testing"
)

func TestFuture(t *testing.T) {
	t.Parallel()
	f := Make[int]()
	if f.IsDone() {
		t.Fatal("a new future is done")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context: %v", err)
	}
	got := make(chan int)
	go func() {
		v, _ := f.Wait(context.Background())
		got <- v
	}()
	f.Set(7, nil)
	if v := <-got; v != 7 || !f.IsDone() {
		t.Fatalf("waiter got %d, done %v", v, f.IsDone())
	}
	boom := errors.New("boom")
	r := Resolved(-1, boom)
	if v, err := r.Result(); !r.IsDone() || v != -1 || err != boom {
		t.Fatalf("resolved: %d, %v, done %v", v, err, r.IsDone())
	}
}
