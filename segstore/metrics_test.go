package segstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsWrap(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	faulty := NewFaulty(NewMemory())
	s := m.Wrap(faulty)

	// Every series exists, at zero, before any request.
	if n := testutil.CollectAndCount(m.requests); n != 2*len(allOps) {
		t.Fatalf("%d request series before any request, want %d", n, 2*len(allOps))
	}
	if n := testutil.CollectAndCount(m.bytes); n != 4 {
		t.Fatalf("%d byte series before any request, want 4", n)
	}

	mustPut(t, s, "seg/a", []byte("12345"))
	if err := s.Put(ctx, "seg/a", []byte("x")); !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "seg/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRange(ctx, "seg/a", 1, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "seg/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, "seg/"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListObjects(ctx, "seg/"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReader(ctx, "part/a", 7, strings.NewReader("1234567")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReader(ctx, "part/b", 8, strings.NewReader("1234567")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "seg/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// A cancelled request is not an error of the store...
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cctx, "seg/a"); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	// ...but a deadline is (the store was too slow).
	faulty.SetFault(OpCheck, func(string) error { return context.DeadlineExceeded })
	if err := s.Check(ctx); err == nil {
		t.Fatal("faulty Check succeeded")
	}

	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{OpPut, resultOK, 1}, {OpPut, resultError, 1},
		{OpGet, resultOK, 1}, {OpGet, resultError, 1},
		{OpGetRange, resultOK, 1}, {OpGetRange, resultError, 0},
		{OpList, resultOK, 2}, {OpDelete, resultOK, 1},
		{OpPutStream, resultOK, 1}, {OpPutStream, resultError, 1},
		{OpCheck, resultOK, 1}, {OpCheck, resultError, 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.op, c.result)); got != c.want {
			t.Errorf("requests{op=%s,result=%s} = %v, want %v", c.op, c.result, got, c.want)
		}
	}
	for _, c := range []struct {
		op, dir string
		want    float64
	}{{OpPut, dirUpload, 5}, {OpPutStream, dirUpload, 7}, {OpGet, dirDownload, 5}, {OpGetRange, dirDownload, 2}} {
		if got := testutil.ToFloat64(m.bytes.WithLabelValues(c.op, c.dir)); got != c.want {
			t.Errorf("bytes{op=%s,direction=%s} = %v, want %v", c.op, c.dir, got, c.want)
		}
	}
	// Two gets were timed; the cancelled one was not.
	if got := histogramCount(t, reg, "streamhouse_s3_request_duration_seconds", OpGet); got != 2 {
		t.Errorf("duration samples for get = %d, want 2", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %+v", err, problems)
	}
}

// histogramCount returns the sample count of histogram name for label op.
func histogramCount(t *testing.T, g prometheus.Gatherer, name, op string) uint64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("no %s{op=%q}", name, op)
	return 0
}

func TestNewMetricsNilRegisterer(t *testing.T) {
	m := NewMetrics(nil)
	mustPut(t, m.Wrap(NewMemory()), "seg/a", []byte("x"))
}
