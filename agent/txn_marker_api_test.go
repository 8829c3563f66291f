package agent

import (
	"testing"
)

// FuzzMarkerRequest drives the marker API's decoder, which reads bytes from the network (an
// authenticated agent's, but still): nothing may panic, and whatever it accepts the sequencer can
// take.
func FuzzMarkerRequest(f *testing.F) {
	f.Add([]byte(`{"ns":"default","id":"tx","version":12,"pid":3,"epoch":1,"commit":true,"partitions":[{"topic":"00112233445566778899aabbccddeeff","partition":1}]}`))
	f.Add([]byte(`{"ns":"default","id":"tx","version":12,"pid":3,"epoch":1,"partitions":[]}`))
	f.Add([]byte(`{"ns":"","version":0,"pid":-1,"epoch":-1,"partitions":[{"partition":-1}]}`))
	f.Add([]byte(`{"ns":"default","id":"tx","version":12,"pid":3,"epoch":1,"commit":true,"group":"g"}`))
	f.Add([]byte(`{"ns":"default","id":"tx","version":12,"pid":3,"epoch":1,"group":"g","partitions":[{"partition":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r markerRequest
		if r.ReadFrom(data) != nil {
			return
		}
		if r.NS == "" || r.Version <= 0 || r.ProducerID < 0 || r.Epoch < 0 || (len(r.Partitions) == 0) == (r.Group == "") {
			t.Fatalf("accepted an invalid request %+v", r)
		}
		w := r.work()
		if len(w.tps) != len(r.Partitions) || len(w.errs) != max(len(w.tps), 1) || w.group != r.Group {
			t.Fatalf("work of %d partitions for %d", len(w.tps), len(r.Partitions))
		}
		for _, tp := range w.tps {
			if tp.Partition < 0 {
				t.Fatalf("accepted partition %d", tp.Partition)
			}
		}
		_ = r.AppendTo(nil)
	})
}

// A marker request on the internal listener frames and parses back as what was sent; a sequence
// request still parses as one.
func TestParseInternalRequest(t *testing.T) {
	t.Parallel()
	frame := func(req interface{ AppendTo([]byte) []byte }, key int16) []byte {
		return req.AppendTo(rawHeader(key, 0, 9))
	}
	mk := &markerRequest{NS: "default", ID: "tx", Version: 5, ProducerID: 1, Epoch: 2, Commit: true, Partitions: []markerTP{{Partition: 3}}}
	corr, seq, got, err := parseInternalRequest(frame(mk, apiKeyMarkers))
	if err != nil || corr != 9 || seq != nil || got == nil || got.ID != "tx" || got.Version != 5 || len(got.Partitions) != 1 {
		t.Fatalf("marker request: %d, %v, %+v, %v", corr, seq, got, err)
	}
	sr := &sequenceRequest{Appends: []seqAppend{{Partition: 0, Object: "seg/x", Pos: 1, Len: 70, TxnRev: 4}}}
	corr, seq, got, err = parseInternalRequest(frame(sr, apiKeySequence))
	if err != nil || corr != 9 || got != nil || seq == nil || seq.Appends[0].TxnRev != 4 {
		t.Fatalf("sequence request: %d, %+v, %v, %v", corr, seq, got, err)
	}
}

// Without Config.Transactions the marker API is not served: the connection is closed, as for
// any request the internal listener does not serve, and nothing is written.
func TestMarkerAPIOffByDefault(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	raw := ledTopicConn(t, a, "nomarkers")
	tp := topicTP(t, a, "nomarkers", 0)
	peer := dialInternal(t, a, "a2")
	req := &markerRequest{NS: DefaultGroup, ID: "tx", Version: 1, ProducerID: 1, Partitions: []markerTP{{Topic: tp.Topic, Partition: 0}}}
	if _, _, err := peer.roundTrip(req); err == nil {
		t.Fatal("a marker request was answered without transactions served")
	}
	if hwm := raw.highWatermark("nomarkers", 0); hwm != 0 {
		t.Fatalf("high watermark %d, want 0", hwm)
	}
}
