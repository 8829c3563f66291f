package cleaner

import (
	"bytes"
	"testing"
)

func TestRewrite(t *testing.T) {
	t.Parallel()
	rs := []rec{{0, []byte("a"), []byte("1")}, {1, []byte("b"), []byte("2")}, {2, []byte("a"), nil}, {3, []byte("c"), []byte("4")}}
	for name, c := range codecs {
		raw := testBatch(t, 100, 3, c, 7, rs)
		b, _, err := ParseBatch(raw)
		if err != nil {
			t.Fatal(err)
		}
		all, err := Rewrite(b, 1<<20, false, func(int64, Record) bool { return true })
		if err != nil || !bytes.Equal(all.Batch, raw) || all.Kept != 4 || all.Removed != 0 {
			t.Errorf("%s: keep all: %+v, %v; want the batch verbatim", name, all, err)
		}
		odd, err := Rewrite(b, 1<<20, false, func(o int64, _ Record) bool { return o%2 == 1 })
		if err != nil || odd.Kept != 2 || odd.Removed != 2 {
			t.Fatalf("%s: keep odd: %+v, %v", name, odd, err)
		}
		nb, n, err := ParseBatch(odd.Batch)
		if err != nil || n != len(odd.Batch) {
			t.Fatalf("%s: rewritten batch: %v", name, err)
		}
		if nb.BaseOffset != 100 || nb.LastOffsetDelta != 3 || nb.NumRecords != 2 || nb.ProducerID != 7 || nb.Codec() != c {
			t.Errorf("%s: rewritten header %+v: want base 100, delta 3, 2 records, producer 7, codec %d", name, nb, c)
		}
		var got []int64
		if err := EachRecord(nb, 1<<20, func(o int64, r Record) error { got = append(got, o); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != 101 || got[1] != 103 {
			t.Errorf("%s: offsets kept %v, want [101 103]", name, got)
		}
		none, err := Rewrite(b, 1<<20, false, func(int64, Record) bool { return false })
		if err != nil || none.Batch != nil || none.Removed != 4 {
			t.Errorf("%s: keep none: %+v, %v; want the batch gone", name, none, err)
		}
		empty, err := Rewrite(b, 1<<20, true, func(int64, Record) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		eb, _, err := ParseBatch(empty.Batch)
		if err != nil || eb.NumRecords != 0 || eb.LastOffsetDelta != 3 || eb.BaseOffset != 100 || eb.ProducerID != 7 || len(eb.Body()) != 0 {
			t.Errorf("%s: keep empty: %+v, %v; want an empty batch spanning [100, 103]", name, eb, err)
		}
	}
}

func TestKeyMap(t *testing.T) {
	t.Parallel()
	k := NewKeyMap(2)
	if !k.Put([]byte("a"), 1) || !k.Put([]byte("b"), 2) || !k.Put([]byte("a"), 3) {
		t.Fatal("puts within the bound refused")
	}
	if k.Put([]byte("c"), 4) {
		t.Fatal("a third key taken into a map of two")
	}
	if o, ok := k.Latest([]byte("a")); !ok || o != 3 {
		t.Errorf("a: %d, %v; want 3", o, ok)
	}
	if _, ok := k.Latest([]byte("c")); ok || !k.Full() || k.Len() != 2 {
		t.Errorf("c found, or full %v, len %d", k.Full(), k.Len())
	}
	if _, ok := k.Latest([]byte{}); ok {
		t.Error("the empty key found")
	}
}

func FuzzRewrite(f *testing.F) {
	for _, c := range codecs {
		f.Add(testBatch(f, 5, 1, c, -1, []rec{{0, []byte("a"), nil}, {1, []byte("a"), []byte("b")}}), uint8(1))
	}
	f.Fuzz(func(t *testing.T, raw []byte, mask uint8) {
		b, _, err := ParseBatch(raw)
		if err != nil {
			return
		}
		if out, err := Recompress(b, int8(mask%5), LevelDefault, 1<<20); err == nil {
			if nb, n, err := ParseBatch(out); err != nil || n != len(out) || nb.Codec() != int8(mask%5) && !b.Control() {
				t.Fatalf("recompress of a valid batch: %v; header %+v from %+v", err, nb, b)
			}
		}
		res, err := Rewrite(b, 1<<20, mask&1 == 1, func(o int64, _ Record) bool { return (o>>1)&1 == int64(mask>>1)&1 })
		if err != nil || res.Batch == nil {
			return
		}
		nb, n, err := ParseBatch(res.Batch)
		if err != nil || n != len(res.Batch) || nb.BaseOffset != b.BaseOffset || nb.LastOffsetDelta != b.LastOffsetDelta {
			t.Fatalf("rewrite of a valid batch: %v; header %+v from %+v", err, nb, b)
		}
	})
}
