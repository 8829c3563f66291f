package coord

import (
	"errors"
	"hash/crc32"
	"reflect"
	"testing"
)

func sampleRecord() Record {
	t1, t2 := TopicID{1, 2, 3}, TopicID{9}
	return Record{Time: 1_700_000_000_123, Entries: []RecordEntry{
		{TP: TP{Topic: t1, Partition: 0}, Entry: IndexEntry{BaseOffset: 100, LastOffset: 109, Epoch: 7, MaxTimestamp: 1_700_000_000_000,
			Extents: []Extent{{Object: "seg/A-a1", Pos: 32, Len: 500, CRC: 0xdeadbeef}, {Object: "seg/A-a1", Pos: 532, Len: 70, CRC: 1}}},
			Batches: []ProducerBatch{{ID: 1000, Epoch: 2, FirstSeq: 5, LastSeq: 9, FirstOffset: 100, LastOffset: 104}}},
		{TP: TP{Topic: t2, Partition: 31}, Entry: IndexEntry{BaseOffset: 0, LastOffset: 0, Epoch: 1, MaxTimestamp: -1,
			Extents: []Extent{{Object: "seg/B-a2", Pos: 32, Len: 61, CRC: 2}}}},
	}}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	r := sampleRecord()
	b := encodeRecord([]byte("prefix"), &r)
	got, err := decodeRecord(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Entries {
		for _, x := range r.Entries[i].Entry.Extents {
			r.Entries[i].Entry.Bytes += int64(x.Len)
		}
		if r.Entries[i].Batches == nil {
			r.Entries[i].Batches = []ProducerBatch{}
		}
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
}

func sampleTxnRecord() Record {
	r := sampleRecord()
	r.Entries[0].Batches[0].Transactional = true
	r.Entries = append(r.Entries, RecordEntry{TP: TP{Topic: TopicID{7}, Partition: 2},
		Entry:  IndexEntry{BaseOffset: 55, LastOffset: 55, Epoch: 3, MaxTimestamp: 1_700_000_000_200},
		Marker: &TxnMarker{ProducerID: 1000, Epoch: 3, Commit: true, CoordinatorEpoch: -1, TxnVersion: 98765, FirstOffset: 40}})
	return r
}

// A record with a marker or a transactional batch is version 2 and round-trips; one with neither is
// still written as version 1, which agents of earlier versions read.
func TestRecordVersion2RoundTrip(t *testing.T) {
	t.Parallel()
	if r := sampleRecord(); encodeRecord(nil, &r)[0] != recordVersion {
		t.Fatal("a record without transactions is not written as version 1")
	}
	r := sampleTxnRecord()
	b := encodeRecord(nil, &r)
	if b[0] != recordVersionTx {
		t.Fatalf("version %d, want %d", b[0], recordVersionTx)
	}
	got, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Entries {
		for _, x := range r.Entries[i].Entry.Extents {
			r.Entries[i].Entry.Bytes += int64(x.Len)
		}
		if r.Entries[i].Batches == nil {
			r.Entries[i].Batches = []ProducerBatch{}
		}
		if r.Entries[i].Entry.Extents == nil {
			r.Entries[i].Entry.Extents = []Extent{}
		}
		r.Entries[i].Entry.Marker = r.Entries[i].Marker // the decoder gives the view's entry its marker
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	for _, re := range r.Entries {
		one := Record{Entries: []RecordEntry{re}}
		if size, est := len(encodeRecord(nil, &one))-8, entrySize(&re); est < size-3*len(re.Entry.Extents)-4 {
			t.Fatalf("entry %+v: %d bytes, estimated %d", re, size, est)
		}
	}
}

// A version 2 entry is data (extents) or a marker (one offset, nothing else), never both or neither.
func TestRecordVersion2RefusesMixedEntries(t *testing.T) {
	t.Parallel()
	for name, edit := range map[string]func(*Record){
		"marker with extents": func(r *Record) { r.Entries[0].Marker = &TxnMarker{ProducerID: 1} },
		"marker of two offsets": func(r *Record) {
			r.Entries[2].Entry.LastOffset++
		},
		"neither":                    func(r *Record) { r.Entries[2].Marker = nil },
		"first offset at the marker": func(r *Record) { r.Entries[2].Marker.FirstOffset = 55 },
		"first offset below -1":      func(r *Record) { r.Entries[2].Marker.FirstOffset = -2 },
	} {
		r := sampleTxnRecord()
		edit(&r)
		if _, err := decodeRecord(encodeRecord(nil, &r)); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: err = %v, want ErrBadRecord", name, err)
		}
	}
}

func TestRecordRefusesDamage(t *testing.T) {
	t.Parallel()
	r := sampleRecord()
	good := encodeRecord(nil, &r)
	for name, b := range map[string][]byte{
		"empty":         nil,
		"version":       append([]byte{9}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 0),
		"flipped crc":   append([]byte{good[0], good[1] ^ 1}, good[2:]...),
		"flipped field": append(append([]byte(nil), good[:len(good)-3]...), good[len(good)-3]^0x40, good[len(good)-2], good[len(good)-1]),
	} {
		if _, err := decodeRecord(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: err = %v, want ErrBadRecord", name, err)
		}
	}
}

// TestRecordCountsAreBounded: a count claiming more elements than the bytes left could hold is
// refused before anything is allocated for it.
func TestRecordCountsAreBounded(t *testing.T) {
	t.Parallel()
	b := []byte{recordVersion, 0, 0, 0, 0, 0}   // time 0
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0x07) // 2^31-1 objects
	b = reencodeCRC(b)
	if _, err := decodeRecord(b); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("err = %v, want ErrBadRecord", err)
	}
}

func reencodeCRC(b []byte) []byte {
	r := append([]byte(nil), b...)
	c := crcOf(r[5:])
	r[1], r[2], r[3], r[4] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return r
}

func FuzzDecodeRecord(f *testing.F) {
	r := sampleRecord()
	f.Add(encodeRecord(nil, &r))
	f.Add(encodeRecord(nil, &Record{}))
	f.Add([]byte{recordVersion, 0, 0, 0, 0})
	tr := sampleTxnRecord()
	f.Add(encodeRecord(nil, &tr))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 5 {
			b = reencodeCRC(b) // reach past the CRC check
		}
		got, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
			return
		}
		for _, e := range got.Entries {
			en := e.Entry
			if en.LastOffset < en.BaseOffset || en.BaseOffset < 0 || e.TP.Partition < 0 || (len(en.Extents) == 0) == (e.Marker == nil) ||
				e.Marker != nil && (len(e.Batches) > 0 || en.LastOffset != en.BaseOffset || e.Marker.ProducerID < 0 || e.Marker.Epoch < 0) {
				t.Fatalf("accepted an invalid entry %+v", e)
			}
			for _, x := range en.Extents {
				if x.Pos < 0 || x.Len < 0 {
					t.Fatalf("accepted an invalid extent %+v", x)
				}
			}
			for _, pb := range e.Batches {
				if pb.FirstOffset < en.BaseOffset || pb.LastOffset > en.LastOffset || pb.LastOffset < pb.FirstOffset {
					t.Fatalf("accepted a batch outside its entry: %+v in [%d, %d]", pb, en.BaseOffset, en.LastOffset)
				}
			}
		}
		again, err := decodeRecord(encodeRecord(nil, &got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding an accepted record: err %v\n got %+v\nwant %+v", err, again, got)
		}
	})
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// entrySize is what encodeRecord writes for an entry, but for object numbers (counted 3 bytes).
func TestEntrySize(t *testing.T) {
	t.Parallel()
	r := sampleRecord()
	for _, re := range r.Entries {
		one := Record{Entries: []RecordEntry{re}}
		names := map[string]bool{}
		named := 0
		for _, x := range re.Entry.Extents {
			if !names[x.Object] {
				names[x.Object] = true
				named += uvarintLen(uint64(len(x.Object))) + len(x.Object)
			}
		}
		// version, crc, time 0, object count, entry count: 8 bytes; object numbers 1 byte each here.
		got := len(encodeRecord(nil, &one)) - 8 - named
		if want := entrySize(&re) - 2*len(re.Entry.Extents); got != want {
			t.Fatalf("entry %+v: encoded in %d bytes, entrySize says %d", re, got, want)
		}
	}
}
