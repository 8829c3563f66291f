package coord

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func groupOffset(top Topic, p int32, off int64) GroupOffset {
	return GroupOffset{Topic: top.ID, Partition: p, Offset: off, LeaderEpoch: 3, Metadata: "m", CommitMs: 1}
}

// A group's metadata and offsets round-trip, a write larger than one Txn is split, offsets are
// deleted one by one or with the group, and names with '/' and '%' stay apart.
func TestWriteAndLoadGroups(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 4 })
	shards := newTopic(t, c, "__consumer_offsets", 2)
	data := newTopic(t, c, "data", 10)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	f := GroupFence{Shard: shards.TP(0), Epoch: epoch}
	meta := &GroupMeta{State: "Stable", Generation: 7, ProtocolType: "consumer", Protocol: "range", Leader: "m1",
		Members: []GroupMember{{ID: "m1", ClientID: "c", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 60000,
			Protocols: []GroupProtocol{{Name: "range", Metadata: []byte{1, 2}}}, Assignment: []byte{3}}}}
	var offs []GroupOffset
	for p := range int32(10) {
		offs = append(offs, groupOffset(data, p, int64(p)*10))
	}
	names := []string{"g/1", "g%2F1", ""}
	versions := map[string]int64{}
	for _, name := range names {
		if versions[name], err = c.WriteGroup(ctx, f, "default", name, GroupWrite{Meta: meta, Offsets: offs}); err != nil {
			t.Fatalf("write %q: %v", name, err)
		}
	}
	g, err := c.LoadGroup(ctx, "default", "g/1")
	if err != nil {
		t.Fatal(err)
	}
	if g.Meta == nil || mustJSON(t, g.Meta) != mustJSON(t, meta) || len(g.Offsets) != 10 {
		t.Fatalf("loaded %s with %d offsets", mustJSON(t, g.Meta), len(g.Offsets))
	}
	if g.Version == 0 || g.Version != versions["g/1"] {
		t.Fatalf("loaded version %d, the write returned %d", g.Version, versions["g/1"])
	}

	del := GroupWrite{DeleteOffsets: []TP{data.TP(0), data.TP(1)}, Offsets: []GroupOffset{groupOffset(data, 2, 99), groupOffset(data, 2, 100)}}
	del.Version = versions["g/1"]
	if versions["g/1"], err = c.WriteGroup(ctx, f, "default", "g/1", del); err != nil {
		t.Fatal(err)
	}
	if v, err := c.WriteGroup(ctx, f, "default", "", GroupWrite{Delete: true, Version: versions[""]}); err != nil || v != 0 {
		t.Fatalf("delete: version %d, %v", v, err)
	}
	all, err := c.LoadGroups(ctx, "default", func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range all {
		got = append(got, fmt.Sprintf("%s:%d", g.Name, len(g.Offsets)))
		if g.Version != versions[g.Name] {
			t.Fatalf("group %q loaded at version %d, last written at %d", g.Name, g.Version, versions[g.Name])
		}
		if g.Name == "g/1" {
			i := slices.IndexFunc(g.Offsets, func(o GroupOffset) bool { return o.Partition == 2 })
			if i < 0 || g.Offsets[i].Offset != 100 {
				t.Fatalf("partition 2 of g/1: %+v", g.Offsets)
			}
		}
	}
	if want := []string{"g%2F1:10", "g/1:8"}; !slices.Equal(got, want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	some, err := c.LoadGroups(ctx, "default", func(n string) bool { return n == "g/1" })
	if err != nil || len(some) != 1 {
		t.Fatalf("filtered load: %d groups, %v", len(some), err)
	}
	if other, err := c.LoadGroups(ctx, "other", func(string) bool { return true }); err != nil || len(other) != 0 {
		t.Fatalf("another namespace: %d groups, %v", len(other), err)
	}
	gone, err := c.LoadGroup(ctx, "default", "")
	if err != nil || gone.Meta != nil || len(gone.Offsets) != 0 {
		t.Fatalf("deleted group: %+v, %v", gone, err)
	}
}

// A coordinator whose lease was revoked cannot write its groups once a successor leads the shard:
// its offset commit is ErrFenced and changes nothing.
func TestGroupWriteFenced(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	shards := newTopic(t, admin, "__consumer_offsets", 1)
	data := newTopic(t, admin, "data", 1)

	a := newSession(t, te.client(t), "a", "127.0.0.1:1")
	eA, err := rev(a.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	fA := GroupFence{Shard: shards.TP(0), Epoch: eA}
	vA, err := a.c.WriteGroup(ctx, fA, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 10)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Etcd().Revoke(ctx, a.LeaseID()); err != nil {
		t.Fatal(err)
	}
	// Between the lease's end and a successor, nobody may write either.
	if _, err := a.c.WriteGroup(ctx, fA, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 11)}, Version: vA}); !errors.Is(err, ErrFenced) {
		t.Fatalf("write without a leader key: %v, want ErrFenced", err)
	}
	b := newSession(t, te.client(t), "b", "127.0.0.1:2")
	eB, err := rev(b.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	fB := GroupFence{Shard: shards.TP(0), Epoch: eB}
	loaded, err := b.c.LoadGroup(ctx, "default", "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.WriteGroup(ctx, fB, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 20)}, Version: loaded.Version}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []GroupWrite{{Offsets: []GroupOffset{groupOffset(data, 0, 12)}}, {Delete: true}, {Meta: &GroupMeta{State: "Empty"}}} {
		w.Version = vA
		if _, err := a.c.WriteGroup(ctx, fA, "default", "g", w); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie write %+v: %v, want ErrFenced", w, err)
		}
	}
	if got := counterValue(t, a.c.metrics.fenced); got != 4 {
		t.Fatalf("fenced writes counted %v, want 4", got)
	}
	g, err := admin.LoadGroup(ctx, "default", "g")
	if err != nil || len(g.Offsets) != 1 || g.Offsets[0].Offset != 20 || g.Meta != nil {
		t.Fatalf("group after the zombie: %+v, %v", g, err)
	}
}

func TestGroupWriteRejects(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	f := GroupFence{Shard: TP{Topic: NewTopicID()}, Epoch: 1}
	for name, tc := range map[string]struct {
		f  GroupFence
		ns string
		w  GroupWrite
	}{
		"no epoch":           {GroupFence{}, "default", GroupWrite{}},
		"bad namespace":      {f, "a/b", GroupWrite{}},
		"delete and write":   {f, "default", GroupWrite{Delete: true, Meta: &GroupMeta{}}},
		"write and delete":   {f, "default", GroupWrite{Offsets: []GroupOffset{{Topic: f.Shard.Topic}}, DeleteOffsets: []TP{{Topic: f.Shard.Topic}}}},
		"negative partition": {f, "default", GroupWrite{Offsets: []GroupOffset{{Topic: f.Shard.Topic, Partition: -1}}}},
		"negative version":   {f, "default", GroupWrite{Version: -1}},
	} {
		if _, err := c.WriteGroup(ctx, tc.f, tc.ns, "g", tc.w); err == nil || errors.Is(err, ErrFenced) {
			t.Errorf("%s: %v, want a validation error", name, err)
		}
	}
}
