package coord

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)

	empty, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustJSON(t, empty); got != `{"agents":[],"partitions":[]}` {
		t.Fatalf("empty cluster = %s", got)
	}

	b := newSession(t, te.client(t), "b", "127.0.0.1:2")
	a, err := c.Register(ctx, AgentInfo{ID: "a", Addr: "127.0.0.1:1", AZ: "az2", Group: "g"}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	orders := newTopic(t, c, "orders", 5)
	newTopic(t, c, "audit", 2)
	epochs := map[int32]int64{}
	for p, s := range map[int32]*Session{0: a, 3: a, 4: b} {
		if epochs[p], err = rev(s.Acquire(ctx, orders.TP(p), EpochHint{})); err != nil {
			t.Fatal(err)
		}
	}
	commit(t, a, orders.TP(0), epochs[0], entry(0, 10, 100), entry(10, 5, 50))
	commit(t, b, orders.TP(4), epochs[4], entry(0, 1, 10))

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ag := range st.Agents {
		if ag.TTLSeconds <= 0 || ag.TTLSeconds > 30 {
			t.Errorf("agent %s: TTL %ds, want in (0, 30]", ag.ID, ag.TTLSeconds)
		}
	}
	wantAgents := []AgentStatus{
		{ID: "a", AZ: "az2", Group: "g", Addr: "127.0.0.1:1", PartitionsLed: 2},
		{ID: "b", AZ: "az1", Group: "default", Addr: "127.0.0.1:2", PartitionsLed: 1},
	}
	for i := range st.Agents {
		st.Agents[i].TTLSeconds = 0
	}
	if !reflect.DeepEqual(st.Agents, wantAgents) {
		t.Errorf("agents = %+v, want %+v", st.Agents, wantAgents)
	}
	ld := func(id string) *string { return &id }
	wantParts := []PartitionStatus{
		{Topic: "audit", Partition: 0},
		{Topic: "audit", Partition: 1},
		{Topic: "orders", Partition: 0, Leader: ld("a"), Epoch: 1, NextOffset: 15, Bytes: 150, Tail: 2, Objects: 2},
		{Topic: "orders", Partition: 1},
		{Topic: "orders", Partition: 2},
		{Topic: "orders", Partition: 3, Leader: ld("a"), Epoch: 1},
		{Topic: "orders", Partition: 4, Leader: ld("b"), Epoch: 1, NextOffset: 1, Bytes: 10, Tail: 1, Objects: 1},
	}
	if !reflect.DeepEqual(st.Partitions, wantParts) {
		t.Errorf("partitions = %s,\nwant %s", mustJSON(t, st.Partitions), mustJSON(t, wantParts))
	}
}

// The JSON shape is the CLI's contract (issue 3): these names, leader null without a leader.
func TestStatusJSON(t *testing.T) {
	st := ClusterStatus{
		Agents:     []AgentStatus{{ID: "a", AZ: "z", Group: "g", Addr: "h:1", TTLSeconds: 9, PartitionsLed: 1}},
		Partitions: []PartitionStatus{{Topic: "t", Partition: 0, NextOffset: 3}, {Topic: "t", Partition: 1, Leader: new("a"), Epoch: 7}},
	}
	want := `{"agents":[{"id":"a","az":"z","group":"g","addr":"h:1","ttl_seconds":9,"partitions_led":1}],` +
		`"partitions":[{"topic":"t","partition":0,"leader":null,"epoch":0,"log_start":0,"next_offset":3,"bytes":0,"segments":0,"tail":0,"objects":0},` +
		`{"topic":"t","partition":1,"leader":"a","epoch":7,"log_start":0,"next_offset":0,"bytes":0,"segments":0,"tail":0,"objects":0}]}`
	if got := mustJSON(t, st); got != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
	var back ClusterStatus
	if err := json.Unmarshal([]byte(want), &back); err != nil || !reflect.DeepEqual(back, st) {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
}

// A leader key left by a deleted topic does not show up, nor count for its agent.
func TestStatusIgnoresLeadersOfDeletedTopics(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	s := newSession(t, c, "a", "127.0.0.1:1")
	if _, err := rev(s.Acquire(ctx, TP{Topic: NewTopicID()}, EpochHint{})); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Partitions) != 0 || len(st.Agents) != 1 || st.Agents[0].PartitionsLed != 0 {
		t.Fatalf("status = %s", mustJSON(t, st))
	}
}

func commit(t *testing.T, s *Session, tp TP, epoch int64, entries ...IndexEntry) {
	t.Helper()
	for _, e := range entries {
		if err := s.Commit(testCtx(t), []Commit{{TP: tp, Epoch: epoch, Entry: e}})[0]; err != nil {
			t.Fatal(err)
		}
	}
}
