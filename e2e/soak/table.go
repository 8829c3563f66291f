package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// notMeasured marks a figure whose measurement failed in a sample.
const notMeasured = -1

// etcdDirs are the top-level directories under the cluster prefix the soak counts keys of: those of
// today's layout and those of the lifecycle layout (docs/INTERNALS.md). Keys elsewhere (pid/next, a
// GC lease) count as "other".
var etcdDirs = []string{"agents/", "topics/", "leaders/", "commits/", "segs/", "index/", "producers/", "logstart/", "epochs/", "groups/"}

// s3Prefixes split the bucket: flush objects (seg/) and partition segments (part/); the rest is "other".
var s3Prefixes = []string{"seg/", "part/"}

const otherDir = "other"

// objCount is a number of objects and their bytes.
type objCount struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// sample is the figures at one moment of the run; a figure is notMeasured when its measurement failed.
type sample struct {
	ElapsedS float64 `json:"elapsed_s"`
	Acked    int64   `json:"acked"`
	// EtcdKeys counts every key under the cluster prefix; EtcdDirs splits it by etcdDirs and otherDir.
	EtcdKeys int64            `json:"etcd_keys"`
	EtcdDirs map[string]int64 `json:"etcd_keys_by_dir"`
	// IndexKeysMax is the most index keys (index/ and segs/) one partition of the soak's topic has.
	IndexKeysMax int64 `json:"index_keys_per_partition_max"`
	EtcdDBSize   int64 `json:"etcd_db_bytes"`
	EtcdDBInUse  int64 `json:"etcd_db_in_use_bytes"`
	// The dev process: resident memory (VmRSS, and its anonymous and file-backed parts) and the Go
	// heap in use (go_memstats_heap_inuse_bytes of its first agent's /metrics: the whole process's).
	RSS      int64               `json:"rss_bytes"`
	RSSAnon  int64               `json:"rss_anon_bytes"`
	RSSFile  int64               `json:"rss_file_bytes"`
	GoHeap   int64               `json:"go_heap_inuse_bytes"`
	S3       objCount            `json:"s3"`
	S3Prefix map[string]objCount `json:"s3_by_prefix"`
}

// unmeasured is a sample with every figure notMeasured.
func unmeasured(elapsed time.Duration, acked int64) sample {
	s := sample{ElapsedS: elapsed.Seconds(), Acked: acked, EtcdKeys: notMeasured, IndexKeysMax: notMeasured,
		EtcdDBSize: notMeasured, EtcdDBInUse: notMeasured, RSS: notMeasured, RSSAnon: notMeasured, RSSFile: notMeasured,
		GoHeap: notMeasured, S3: objCount{notMeasured, notMeasured}}
	return s
}

// figure is one row of the table: how to read it from a sample, and how to print it.
type figure struct {
	name string // as printed
	id   string // in JSON
	mib  bool   // bytes, printed in MiB
	get  func(sample) int64
}

func (f figure) value(s sample) float64 {
	v := f.get(s)
	if v < 0 {
		return math.NaN()
	}
	if f.mib {
		return float64(v) / (1 << 20)
	}
	return float64(v)
}

// figures are the table's rows, in order.
func figures() []figure {
	fs := []figure{
		{"records acked", "records_acked", false, func(s sample) int64 { return s.Acked }},
		{"etcd keys", "etcd_keys", false, func(s sample) int64 { return s.EtcdKeys }},
	}
	for _, d := range append(etcdDirs[:len(etcdDirs):len(etcdDirs)], otherDir) {
		fs = append(fs, figure{"  " + d, "etcd_keys:" + d, false, func(s sample) int64 { return dirKeys(s.EtcdDirs, d) }})
	}
	fs = append(fs,
		figure{"index keys/partition, max", "index_keys_per_partition_max", false, func(s sample) int64 { return s.IndexKeysMax }},
		figure{"etcd db size MiB", "etcd_db_mib", true, func(s sample) int64 { return s.EtcdDBSize }},
		figure{"etcd db in use MiB", "etcd_db_in_use_mib", true, func(s sample) int64 { return s.EtcdDBInUse }},
		figure{"RSS MiB", "rss_mib", true, func(s sample) int64 { return s.RSS }},
		figure{"  anon MiB", "rss_anon_mib", true, func(s sample) int64 { return s.RSSAnon }},
		figure{"  file MiB", "rss_file_mib", true, func(s sample) int64 { return s.RSSFile }},
		figure{"Go heap in use MiB", "go_heap_inuse_mib", true, func(s sample) int64 { return s.GoHeap }},
		figure{"S3 objects", "s3_objects", false, func(s sample) int64 { return s.S3.Objects }},
	)
	for _, p := range append(s3Prefixes[:len(s3Prefixes):len(s3Prefixes)], otherDir) {
		fs = append(fs, figure{"  " + p, "s3_objects:" + p, false, func(s sample) int64 { return prefixCount(s, p).Objects }})
	}
	fs = append(fs, figure{"S3 MiB", "s3_mib", true, func(s sample) int64 { return s.S3.Bytes }})
	for _, p := range append(s3Prefixes[:len(s3Prefixes):len(s3Prefixes)], otherDir) {
		fs = append(fs, figure{"  " + p + " MiB", "s3_mib:" + p, true, func(s sample) int64 { return prefixCount(s, p).Bytes }})
	}
	return fs
}

func dirKeys(m map[string]int64, d string) int64 {
	if v, ok := m[d]; ok {
		return v
	}
	return notMeasured
}

func prefixCount(s sample, p string) objCount {
	if v, ok := s.S3Prefix[p]; ok {
		return v
	}
	return objCount{notMeasured, notMeasured}
}

// row is one figure at the start, middle and end of the run, and its growth per minute over the
// second half.
type row struct {
	Figure string   `json:"figure"`
	Start  optFloat `json:"start"`
	Middle optFloat `json:"middle"`
	End    optFloat `json:"end"`
	PerMin optFloat `json:"per_min_second_half"`
	mib    bool
}

// optFloat is a figure that may be NaN (not measured), which JSON carries as null.
type optFloat float64

func (f optFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

// summary is the table: which samples are the start, middle and end, and the rows.
type summary struct {
	StartS  float64 `json:"start_s"`
	MiddleS float64 `json:"middle_s"`
	EndS    float64 `json:"end_s"`
	Rows    []row   `json:"rows"`
}

// summarize takes the first sample as the start, the last as the end and the one nearest halfway
// between them as the middle. Growth per minute is the least-squares slope over the samples from the
// middle to the end: one figure for "flat" that a single high or low sample (a GC cycle, a
// compaction just finished) does not decide, as a difference of two samples would.
func summarize(samples []sample, figs []figure) summary {
	if len(samples) == 0 {
		return summary{}
	}
	first, last := samples[0], samples[len(samples)-1]
	mid := middle(samples)
	s := summary{StartS: first.ElapsedS, MiddleS: samples[mid].ElapsedS, EndS: last.ElapsedS}
	for _, f := range figs {
		var xs, ys []float64
		for _, smp := range samples[mid:] {
			if v := f.value(smp); !math.IsNaN(v) {
				xs, ys = append(xs, smp.ElapsedS/60), append(ys, v)
			}
		}
		s.Rows = append(s.Rows, row{Figure: f.id, Start: optFloat(f.value(first)),
			Middle: optFloat(f.value(samples[mid])), End: optFloat(f.value(last)), PerMin: optFloat(slope(xs, ys)), mib: f.mib})
	}
	return s
}

// middle is the index of the sample nearest halfway between the first and the last.
func middle(samples []sample) int {
	half := (samples[0].ElapsedS + samples[len(samples)-1].ElapsedS) / 2
	best := 0
	for i, s := range samples {
		if math.Abs(s.ElapsedS-half) < math.Abs(samples[best].ElapsedS-half) {
			best = i
		}
	}
	return best
}

// slope is the least-squares slope of ys over xs; NaN with fewer than two distinct xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return math.NaN()
	}
	var sx, sy float64
	for i := range xs {
		sx, sy = sx+xs[i], sy+ys[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return math.NaN()
	}
	return num / den
}

// print writes the table; the rows' names are those of figs, in order.
func (s summary) print(w io.Writer, figs []figure) {
	cells := [][]string{{"figure", "start (" + secs(s.StartS) + ")", "middle (" + secs(s.MiddleS) + ")",
		"end (" + secs(s.EndS) + ")", "/min, 2nd half"}}
	for i, r := range s.Rows {
		name := r.Figure
		if i < len(figs) {
			name = figs[i].name
		}
		cells = append(cells, []string{name, num(float64(r.Start), r.mib), num(float64(r.Middle), r.mib),
			num(float64(r.End), r.mib), signed(float64(r.PerMin), r.mib)})
	}
	writeTable(w, cells)
}

// writeTable writes rows of cells in columns: the first aligned left, the others right.
func writeTable(w io.Writer, cells [][]string) {
	var widths []int
	for _, r := range cells {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range cells {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func secs(s float64) string { return (time.Duration(s) * time.Second).String() }

// num prints a count with thousands separators, or MiB with one decimal; "-" when not measured.
func num(v float64, mib bool) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case mib:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return thousands(int64(math.Round(v)))
	}
}

func signed(v float64, mib bool) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch {
	case mib:
		return fmt.Sprintf("%+.2f", v)
	case math.Abs(v) >= 100:
		if v > 0 {
			return "+" + thousands(int64(math.Round(v)))
		}
		return thousands(int64(math.Round(v)))
	default:
		return fmt.Sprintf("%+.1f", v)
	}
}

// thousands formats n as 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
