package history

import (
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestRecorderRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	r, err := NewRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	want := []Event{
		{Type: Send, Proc: "producer-1", Start: t0, End: t0.Add(time.Millisecond), Outcome: OK, Topic: "a", Partition: 2, Offset: 7, Value: "v"},
		{Type: Poll, Proc: "assign-1", Session: 1, Start: t0, End: t0, Outcome: OK,
			Reads: []Read{{Topic: "a", Partition: 0, Offset: 0, Value: "x"}, {Topic: "a", Partition: 2, Offset: 7, Value: "v"}}},
		{Type: Fault, Start: t0, End: t0, Fault: "agent-kill", Phase: PhaseInject, Detail: "a1"},
	}
	for _, e := range want {
		r.Add(e)
	}
	if got := r.Events(); !reflect.DeepEqual(got, want) {
		t.Errorf("Events() = %+v", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v\nwant %+v", got, want)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r, err := NewRecorder("")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				r.Add(Event{Type: Send})
			}
		})
	}
	wg.Wait()
	if n := len(r.Events()); n != 800 {
		t.Errorf("%d events, want 800", n)
	}
}

func TestTransformed(t *testing.T) {
	t.Parallel()
	out := Transformed("chaos-txn-in/2/txn-producer-1/7/0", "ctp-1.2/14")
	if in, ok := Untransformed(out); !ok || in != "chaos-txn-in/2/txn-producer-1/7/0" {
		t.Errorf("Untransformed(%q) = %q, %v", out, in, ok)
	}
	for _, bad := range []string{"chaos-txn-in/2/txn-producer-1/7/0", "ctp/only-one-part"} {
		if in, ok := Untransformed(bad); ok {
			t.Errorf("Untransformed(%q) = %q, true", bad, in)
		}
	}
}
