package coord

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestConnectUnreachableFailsWithinDialTimeout(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err = Connect(context.Background(), Config{Endpoints: []string{addr}, DialTimeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if elapsed > timeout+2*time.Second {
		t.Fatalf("Connect took %v with a %v dial timeout", elapsed, timeout)
	}
	want := "etcd: cannot reach " + addr + " within 300ms: context deadline exceeded"
	if err.Error() != want || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q, want %q", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error does not wrap context.DeadlineExceeded: %v", err)
	}
}

func TestConnectValidates(t *testing.T) {
	if _, err := Connect(context.Background(), Config{}); err == nil {
		t.Fatal("Connect without endpoints succeeded")
	}
	te := newTestEtcd(t)
	c := te.client(t, func(cfg *Config) { cfg.Prefix = strings.TrimSuffix(te.Prefix, "/") })
	if c.Prefix() != te.Prefix {
		t.Fatalf("prefix %q, want %q", c.Prefix(), te.Prefix)
	}
}

func TestKeys(t *testing.T) {
	k := keys{prefix: "/p/"}
	id := TopicID{0xab, 1}
	tp := TP{Topic: id, Partition: 12}
	for _, tc := range []struct {
		key  string
		want parsedKey
	}{
		{k.agent("a-1"), parsedKey{kind: kindAgent, name: "a-1"}},
		{k.topic("orders"), parsedKey{kind: kindTopic, name: "orders"}},
		{k.leader(tp), parsedKey{kind: kindLeader, tp: tp}},
		{k.indexEntry(tp, 42), parsedKey{kind: kindIndex, tp: tp, base: 42}},
		{k.producer(tp, 7), parsedKey{kind: kindProducer, tp: tp, base: 7}},
		{k.segment(tp, 9), parsedKey{kind: kindSegment, tp: tp, base: 9}},
		{k.logStart(tp), parsedKey{kind: kindLogStart, tp: tp}},
		{k.epoch(tp), parsedKey{kind: kindEpoch, tp: tp}},
		{k.commit("01ABC"), parsedKey{kind: kindCommit, name: "01ABC"}},
		{"/p/commits/a/b", parsedKey{}},
		{k.pidNext(), parsedKey{kind: kindPIDNext}},
		{"/p/leaders/zz/1", parsedKey{}},
		{"/other/topics/x", parsedKey{}},
	} {
		if got := k.parse(tc.key); got != tc.want {
			t.Errorf("parse(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
	if got, want := k.indexEntry(tp, 42), "/p/index/ab010000000000000000000000000000/12/00000000000000000042"; got != want {
		t.Errorf("index key %q, want %q", got, want)
	}
	if got, want := k.leader(tp), "/p/leaders/ab010000000000000000000000000000/12"; got != want {
		t.Errorf("leader key %q, want %q", got, want)
	}
}

func TestTopicJSON(t *testing.T) {
	top := Topic{Name: "x", ID: TopicID{1, 2, 3}, Partitions: 2}
	b := mustJSON(t, top)
	if !strings.Contains(b, `"id":"01020300000000000000000000000000"`) {
		t.Fatalf("topic id not hex in JSON: %s", b)
	}
	var back Topic
	if err := back.ID.UnmarshalText([]byte(top.ID.String())); err != nil || back.ID != top.ID {
		t.Fatalf("round trip: %v %v", back.ID, err)
	}
	if _, err := ParseTopicID("xyz"); err == nil {
		t.Fatal("bad topic id parsed")
	}
}
