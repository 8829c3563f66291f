package segstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"testing"
)

// testChunks returns n chunks of size bytes each with distinct contents, topics and partitions.
func testChunks(n, size int) []Chunk {
	chunks := make([]Chunk, n)
	for i := range chunks {
		c := &chunks[i]
		c.TopicID[0], c.TopicID[15] = byte(i), 0xAB
		c.Partition = int32(i * 7)
		c.Data = bytes.Repeat([]byte{byte('a' + i%26)}, size+i)
	}
	return chunks
}

func TestAppendObjectRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []Chunk
	}{
		{"empty", nil},
		{"one", testChunks(1, 10)},
		{"several", testChunks(5, 100)},
		{"zero-length chunk", []Chunk{{Partition: 1, Data: []byte("x")}, {Partition: 2}, {Partition: 3, Data: []byte("yz")}}},
		{"negative partition", []Chunk{{Partition: -1, Data: []byte("x")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("existing buffer contents")
			out, extents := AppendObject(slices.Clone(prefix), tc.chunks)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("AppendObject overwrote dst's contents")
			}
			obj := out[len(prefix):]
			if len(extents) != len(tc.chunks) {
				t.Fatalf("got %d extents for %d chunks", len(extents), len(tc.chunks))
			}
			got, err := Decode(obj)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !slices.Equal(got, extents) {
				t.Fatalf("Decode extents = %+v, AppendObject returned %+v", got, extents)
			}
			for i, e := range extents {
				c := tc.chunks[i]
				if e.TopicID != c.TopicID || e.Partition != c.Partition {
					t.Errorf("extent %d is for %x/%d, chunk for %x/%d", i, e.TopicID, e.Partition, c.TopicID, c.Partition)
				}
				data := obj[e.Pos : e.Pos+int64(e.Len)]
				if !bytes.Equal(data, c.Data) {
					t.Errorf("extent %d holds %q, want %q", i, data, c.Data)
				}
				if err := VerifyExtent(data, e.CRC); err != nil {
					t.Errorf("VerifyExtent(%d): %v", i, err)
				}
			}
		})
	}
}

// The head and the chunks' data, sent as parts, are the object AppendObject makes; a CRC the caller
// gives is what the directory records (it is trusted: a wrong one makes the extent unreadable).
func TestAppendHeadWithKnownCRCs(t *testing.T) {
	chunks := testChunks(4, 50)
	whole, want := AppendObject(nil, chunks)
	known := slices.Clone(chunks)
	for i := range known {
		known[i].CRC = crc32.Checksum(known[i].Data, castagnoli)
	}
	head, got := AppendHead(nil, known)
	obj := head
	for _, c := range known {
		obj = append(obj, c.Data...)
	}
	if !bytes.Equal(obj, whole) || !slices.Equal(got, want) {
		t.Fatal("the head and the chunks' data are not the object AppendObject makes")
	}

	known[2].CRC ^= 1
	head, got = AppendHead(nil, known)
	if got[2].CRC != known[2].CRC {
		t.Fatalf("the directory records %08x for a chunk given %08x", got[2].CRC, known[2].CRC)
	}
	if _, err := Decode(append(head, obj[len(head):]...)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("an object whose directory has a wrong CRC decoded: %v", err)
	}
}

// TestAppendObjectLayout pins the byte layout of docs/INTERNALS.md, independently of Decode.
func TestAppendObjectLayout(t *testing.T) {
	topic := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	obj, _ := AppendObject(nil, []Chunk{{TopicID: topic, Partition: 3, Data: []byte("hello")}, {Partition: 9, Data: []byte("kafka!")}})
	be := binary.BigEndian
	crc := func(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
	if want := 32 + 2*36 + 5 + 6; len(obj) != want {
		t.Fatalf("len = %d, want %d", len(obj), want)
	}
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"version", uint64(be.Uint16(obj[8:])), 1},
		{"flags", uint64(be.Uint16(obj[10:])), 0},
		{"count", uint64(be.Uint32(obj[12:])), 2},
		{"dirLen", uint64(be.Uint32(obj[16:])), 72},
		{"dirCRC", uint64(be.Uint32(obj[20:])), uint64(crc(obj[32:104]))},
		{"hdrCRC", uint64(be.Uint32(obj[24:])), uint64(crc(obj[:24]))},
		{"reserved", uint64(be.Uint32(obj[28:])), 0},
		{"partition 0", uint64(be.Uint32(obj[32+16:])), 3},
		{"pos 0", be.Uint64(obj[32+20:]), 104},
		{"len 0", uint64(be.Uint32(obj[32+28:])), 5},
		{"crc 0", uint64(be.Uint32(obj[32+32:])), uint64(crc([]byte("hello")))},
		{"partition 1", uint64(be.Uint32(obj[68+16:])), 9},
		{"pos 1", be.Uint64(obj[68+20:]), 109},
		{"len 1", uint64(be.Uint32(obj[68+28:])), 6},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if string(obj[:8]) != "SHSEG\x00\x00\x01" || !bytes.Equal(obj[32:48], topic[:]) || string(obj[104:]) != "hellokafka!" {
		t.Errorf("magic, topic id or data misplaced: %q", obj)
	}
}

func TestAppendObjectAllocations(t *testing.T) {
	chunks := testChunks(8, 1024)
	buf := make([]byte, 0, 64<<10)
	allocs := testing.AllocsPerRun(20, func() {
		_, _ = AppendObject(buf[:0], chunks)
	})
	if allocs > 1 {
		t.Errorf("AppendObject made %.0f allocations into a large enough buffer, want 1 (the extents)", allocs)
	}
}

// resealHeader recomputes the header CRC after a test edits header fields, so that the check under
// test, not the CRC, is what rejects the object.
func resealHeader(obj []byte) {
	binary.BigEndian.PutUint32(obj[24:], crc32.Checksum(obj[:24], castagnoli))
}

// resealDir recomputes the directory CRC (and then the header CRC) after a test edits the directory.
func resealDir(obj []byte) {
	dirLen := binary.BigEndian.Uint32(obj[16:])
	binary.BigEndian.PutUint32(obj[20:], crc32.Checksum(obj[32:32+dirLen], castagnoli))
	resealHeader(obj)
}

func TestDecodeCorrupt(t *testing.T) {
	valid, _ := AppendObject(nil, testChunks(3, 20))
	// Directory entry i starts at 32+36*i; pos at +20, len at +28.
	entry := func(i int) int { return 32 + 36*i }
	be := binary.BigEndian
	for _, tc := range []struct {
		name   string
		mutate func(obj []byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"truncated header", func(o []byte) []byte { return o[:31] }},
		{"truncated directory", func(o []byte) []byte { return o[:32+36*2] }},
		{"truncated data", func(o []byte) []byte { return o[:len(o)-1] }},
		{"trailing byte", func(o []byte) []byte { return append(o, 0) }},
		{"bad magic", func(o []byte) []byte { o[0] = 'X'; resealHeader(o); return o }},
		{"header bit flip", func(o []byte) []byte { o[13] ^= 0x10; return o }},
		{"header crc bit flip", func(o []byte) []byte { o[25] ^= 1; return o }},
		{"version 2", func(o []byte) []byte { be.PutUint16(o[8:], 2); resealHeader(o); return o }},
		{"flags set", func(o []byte) []byte { be.PutUint16(o[10:], 1); resealHeader(o); return o }},
		{"reserved set", func(o []byte) []byte { be.PutUint32(o[28:], 1); return o }},
		{"count too big", func(o []byte) []byte { be.PutUint32(o[12:], 4); resealHeader(o); return o }},
		{"count without dirLen", func(o []byte) []byte { be.PutUint32(o[12:], 2); resealHeader(o); return o }},
		{"huge count", func(o []byte) []byte {
			be.PutUint32(o[12:], 0xFFFFFFFF)
			be.PutUint32(o[16:], 0xFFFFFFFF)
			resealHeader(o)
			return o
		}},
		{"dirLen past end", func(o []byte) []byte {
			be.PutUint32(o[12:], 100)
			be.PutUint32(o[16:], 3600)
			resealHeader(o)
			return o
		}},
		{"directory bit flip", func(o []byte) []byte { o[entry(1)+3] ^= 0x80; return o }},
		{"directory crc bit flip", func(o []byte) []byte { o[21] ^= 1; resealHeader(o); return o }},
		{"data bit flip", func(o []byte) []byte { o[len(o)-5] ^= 4; return o }},
		{"overlapping extents", func(o []byte) []byte {
			be.PutUint64(o[entry(1)+20:], be.Uint64(o[entry(1)+20:])-1)
			resealDir(o)
			return o
		}},
		{"gap between extents", func(o []byte) []byte {
			be.PutUint64(o[entry(1)+20:], be.Uint64(o[entry(1)+20:])+1)
			resealDir(o)
			return o
		}},
		{"shortened extent", func(o []byte) []byte {
			be.PutUint32(o[entry(0)+28:], be.Uint32(o[entry(0)+28:])-1)
			resealDir(o)
			return o
		}},
		{"extent inside directory", func(o []byte) []byte { be.PutUint64(o[entry(0)+20:], 40); resealDir(o); return o }},
		{"extent past end", func(o []byte) []byte { be.PutUint32(o[entry(2)+28:], 1<<20); resealDir(o); return o }},
		{"extent length over int32", func(o []byte) []byte { be.PutUint32(o[entry(2)+28:], 0x80000000); resealDir(o); return o }},
		{"extent pos overflow", func(o []byte) []byte { be.PutUint64(o[entry(0)+20:], ^uint64(0)-3); resealDir(o); return o }},
		{"swapped directory entries", func(o []byte) []byte {
			e0 := slices.Clone(o[entry(0):entry(1)])
			copy(o[entry(0):], o[entry(1):entry(2)])
			copy(o[entry(1):], e0)
			resealDir(o)
			return o
		}},
		{"extent crc wrong", func(o []byte) []byte { o[entry(1)+35] ^= 1; resealDir(o); return o }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.mutate(slices.Clone(valid))
			extents, err := Decode(obj)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode = %+v, %v; want ErrCorrupt", extents, err)
			}
			t.Log(err)
		})
	}
}

func TestVerifyExtent(t *testing.T) {
	data := []byte("record batch")
	crc := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	if err := VerifyExtent(data, crc); err != nil {
		t.Fatalf("VerifyExtent(good) = %v", err)
	}
	if err := VerifyExtent(data, crc^1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("VerifyExtent(bad crc) = %v, want ErrCorrupt", err)
	}
}

// FuzzDecode drives Decode with valid objects and their mutations. Decode must never panic, and any
// object it accepts must hold up independently: every extent in bounds with a good CRC, and
// re-encoding the extents gives back the same bytes.
func FuzzDecode(f *testing.F) {
	for _, chunks := range [][]Chunk{nil, testChunks(1, 0), testChunks(1, 5), testChunks(3, 17)} {
		obj, _ := AppendObject(nil, chunks)
		f.Add(obj)
		for _, cut := range []int{0, 1, 31, 32, len(obj) / 2, len(obj) - 1} {
			if cut <= len(obj) {
				f.Add(slices.Clone(obj[:cut]))
			}
		}
		for _, i := range []int{0, 9, 13, 17, 21, 25, 29, 40, len(obj) - 1} {
			if i < len(obj) {
				m := slices.Clone(obj)
				m[i] ^= 0xFF
				f.Add(m)
			}
		}
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		extents, err := Decode(obj)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		chunks := make([]Chunk, len(extents))
		for i, e := range extents {
			if e.Pos < 0 || e.Len < 0 || e.Pos+int64(e.Len) > int64(len(obj)) {
				t.Fatalf("accepted extent %d %+v is out of bounds of %d bytes", i, e, len(obj))
			}
			data := obj[e.Pos : e.Pos+int64(e.Len)]
			if err := VerifyExtent(data, e.CRC); err != nil {
				t.Fatalf("accepted extent %d fails its CRC: %v", i, err)
			}
			chunks[i] = Chunk{TopicID: e.TopicID, Partition: e.Partition, Data: data}
		}
		again, againExtents := AppendObject(nil, chunks)
		if !bytes.Equal(again, obj) || !slices.Equal(againExtents, extents) {
			t.Fatalf("accepted object does not re-encode to itself:\n got %x\nwant %x", again, obj)
		}
	})
}

func benchChunks() []Chunk { return testChunks(8, 64<<10) }

func BenchmarkAppendObject(b *testing.B) {
	chunks := benchChunks()
	var size int64
	for _, c := range chunks {
		size += int64(len(c.Data))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	buf := make([]byte, 0, size+32+36*int64(len(chunks)))
	for b.Loop() {
		buf, _ = AppendObject(buf[:0], chunks)
	}
}

func BenchmarkDecode(b *testing.B) {
	obj, _ := AppendObject(nil, benchChunks())
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(obj); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleAppendObject() {
	obj, extents := AppendObject(nil, []Chunk{
		{Partition: 0, Data: []byte("batch for partition 0")},
		{Partition: 1, Data: []byte("batch for partition 1")},
	})
	// Store obj under NewObjectKey(agentID); index the extents. A reader with an extent needs only
	// its byte range:
	e := extents[1]
	data := obj[e.Pos : e.Pos+int64(e.Len)]
	fmt.Println(string(data), VerifyExtent(data, e.CRC))
	// Output: batch for partition 1 <nil>
}
