package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// The table's value columns, and the ratios printed for each row. sh-1-mem (make bench only) is one
// agent whose objects stay in memory (the newest 768 MiB): the agent without the embedded S3
// endpoint's CPU beside it. sh-1-sec (make bench only) is sh-1 with a SASL_SSL listener (TLS,
// SCRAM-SHA-512, ACLs on), its clients over TLS logged in with SCRAM; its ratio to sh-1 is the cost of
// security.
var (
	columns = []string{"sh-1", "sh-3", "sh-1-mem", "sh-1-sec", "kfake"}
	ratios  = []string{"sh-1", "sh-3", "sh-1-mem", "sh-1-sec"}
)

// secRatio is the ratio column of the secured target to the plaintext one.
const secRatio = "sh-1-sec/sh-1"

// row is one figure of one workload across the targets.
type row struct {
	Section  string             `json:"section"`
	Figure   string             `json:"figure"`
	Workload string             `json:"workload"`
	Unit     string             `json:"unit"`
	Values   map[string]float64 `json:"values"`
	Ratios   map[string]float64 `json:"ratios,omitempty"` // "sh-1/kfake", "sh-3/kfake"
}

// verdict is one target of the issue, measured.
type verdict struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

type report struct {
	Suite     string    `json:"suite"`
	Command   string    `json:"command"`
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Machine   machine   `json:"machine"`
	Workloads struct {
		Warm, Window, LatencyWindow string
	} `json:"timing"`
	Rows     []row     `json:"rows"`
	Verdicts []verdict `json:"targets"`
	Notes    []string  `json:"notes"`

	tput    map[produceSpec]map[string]throughputResult
	lat     map[string]latencyResult
	express []expressRun
	wide    map[string][2]latencyResult // 8 and 1,024 partitions at one fixed rate
	cons    map[string]consumeResult
	procs   *procResult
	hist    *historyResult
}

func newReport(o suiteOptions, p plan) *report {
	r := &report{Suite: o.suite, Command: strings.Join(os.Args, " "), Started: time.Now(), Machine: describeMachine(),
		tput: map[produceSpec]map[string]throughputResult{}}
	r.Workloads.Warm, r.Workloads.Window, r.Workloads.LatencyWindow = p.warm.String(), p.window.String(), p.latWindow.String()
	return r
}

func (r *report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *report) add(section, figure, workload, unit string, values map[string]float64) {
	v := map[string]float64{}
	for k, x := range values {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v[k] = x
		}
	}
	row := row{Section: section, Figure: figure, Workload: workload, Unit: unit, Values: v}
	if s, p := v["sh-1-sec"], v["sh-1"]; s != 0 && p != 0 {
		row.Ratios = map[string]float64{secRatio: s / p}
	}
	if k, ok := v["kfake"]; ok && k != 0 {
		for _, sh := range ratios {
			if x, ok := v[sh]; ok {
				if row.Ratios == nil {
					row.Ratios = map[string]float64{}
				}
				row.Ratios[sh+"/kfake"] = x / k
			}
		}
	}
	r.Rows = append(r.Rows, row)
}

func pick[T any](res map[string]T, f func(T) float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range res {
		out[k] = f(v)
	}
	return out
}

// shOnly drops kfake from figures that only StreamHouse has (S3 and etcd requests).
func shOnly(m map[string]float64) map[string]float64 {
	delete(m, "kfake")
	return m
}

func (r *report) addThroughput(spec produceSpec, res map[string]throughputResult) {
	r.tput[spec] = res
}

// throughputRows lays the produce runs out figure by figure, so that one figure's workloads read down
// one block of the table.
func (r *report) throughputRows(specs []produceSpec) {
	const sec = "produce, closed loop"
	figures := []struct {
		name, unit string
		f          func(throughputResult) float64
		shOnly     bool
	}{
		{"produce", "MiB/s", func(t throughputResult) float64 { return t.mibps }, false},
		{"produce", "records/s", func(t throughputResult) float64 { return t.recps }, false},
		{"S3 PUTs/s, busiest agent", "/s", func(t throughputResult) float64 { return t.puts }, true},
		{"etcd Txns/s, busiest agent", "/s", func(t throughputResult) float64 { return t.txns }, true},
		{"S3 PUT p50", "ms", func(t throughputResult) float64 { return t.putP50 }, true},
		{"S3 PUT size, mean", "MiB", func(t throughputResult) float64 { return t.putMiB }, true},
		{"broker CPU (pprof labels)", "CPU-s/GiB", throughputResult.brokerCPUPerGiB, false},
		{"process CPU (all in-process)", "CPU-s/GiB", throughputResult.processCPUPerGiB, false},
		{"  of which S3 endpoint (gofakes3)", "CPU-s/GiB", func(t throughputResult) float64 { return t.cpuBy[compS3] / t.gib }, true},
		{"  of which etcd server", "CPU-s/GiB", func(t throughputResult) float64 { return t.cpuBy[compEtcd] / t.gib }, true},
		{"  of which clients", "CPU-s/GiB", func(t throughputResult) float64 { return t.cpuBy[compClient] / t.gib }, false},
		{"  of which runtime (GC workers, unlabelled)", "CPU-s/GiB", func(t throughputResult) float64 { return t.cpuBy["unlabelled"] / t.gib }, false},
	}
	for _, fig := range figures {
		for _, spec := range specs {
			v := pick(r.tput[spec], fig.f)
			if fig.shOnly {
				v = shOnly(v)
			}
			r.add(sec, fig.name, spec.String(), fig.unit, v)
		}
	}
}

func (r *report) addLatency(label string, res map[string]latencyResult) {
	r.lat = res
	r.latencyRows(latencySpec.String(), res)
}

func (r *report) latencyRows(workload string, res map[string]latencyResult) {
	const sec = "produce latency, open loop at min(50% of max, the rate cap)"
	ms := func(name string, f func(latencyResult) float64, sh bool) {
		v := pick(res, f)
		if sh {
			v = shOnly(v)
		}
		r.add(sec, name, workload, "ms", v)
	}
	r.add(sec, "offered rate", workload, "records/s", pick(res, func(l latencyResult) float64 { return l.rate }))
	ms("produce p50", func(l latencyResult) float64 { return l.p50 }, false)
	ms("produce p99", func(l latencyResult) float64 { return l.p99 }, false)
	ms("produce p99.9", func(l latencyResult) float64 { return l.p999 }, false)
	ms("end-to-end p50", func(l latencyResult) float64 { return l.e2e50 }, false)
	ms("end-to-end p99", func(l latencyResult) float64 { return l.e2e99 }, false)
	ms("S3 PUT p50", func(l latencyResult) float64 { return l.putP50 }, true)
	ms("S3 PUT p99", func(l latencyResult) float64 { return l.putP99 }, true)
	ms("etcd Txn p50", func(l latencyResult) float64 { return l.txnP50 }, true)
	ms("etcd Txn p99 (interpolated in its histogram)", func(l latencyResult) float64 { return l.txnP99 }, true)
	ms("agent write p50, sealed → committed (interpolated)", func(l latencyResult) float64 { return l.writeP50 }, true)
	ms("agent write p99", func(l latencyResult) float64 { return l.writeP99 }, true)
	ms("floor: flush + PUT p50 + Txn p50", latencyResult.floor, true)
	ms("agent overhead p50 (p50 - floor)", func(l latencyResult) float64 { return l.p50 - l.floor() }, true)
	ms("agent overhead p99 (p99 - floor)", func(l latencyResult) float64 { return l.p99 - l.floor() }, true)
	ms("produce request round trip p50 (client: written → answered)", func(l latencyResult) float64 { return l.req50 }, false)
	ms("produce request round trip p99", func(l latencyResult) float64 { return l.req99 }, false)
	ms("agent overhead p99, per request (request p99 - floor)", func(l latencyResult) float64 { return l.req99 - l.floor() }, true)
	r.add(sec, "S3 PUTs/s at this rate, busiest agent", workload, "/s", shOnly(pick(res, func(l latencyResult) float64 { return l.puts })))
	r.add(sec, "etcd Txns/s at this rate, busiest agent", workload, "/s", shOnly(pick(res, func(l latencyResult) float64 { return l.txns })))
	r.add(sec, "S3 GETs/s, busiest agent (the tailing consumer's)", workload, "/s", shOnly(pick(res, func(l latencyResult) float64 { return l.gets })))
}

// addWide reports the fixed-rate runs on 1,024 partitions next to the 8-partition ones at the same rate.
func (r *report) addWide(narrow, wide map[string]latencyResult) {
	if len(wide) == 0 {
		return
	}
	r.latencyRows(wideSpec(latencySpec).String(), wide)
	r.wide = map[string][2]latencyResult{}
	for name, w := range wide {
		r.wide[name] = [2]latencyResult{narrow[name], w}
	}
}

func (r *report) addProfile(label string, tr throughputResult, lr latencyResult) {
	w := latencySpec.String() + ", " + label
	r.latencyRows(w, map[string]latencyResult{"sh-1": lr})
	r.add("produce latency, open loop at min(50% of max, the rate cap)", "max produce, closed loop (sets the rate)", w, "MiB/s", map[string]float64{"sh-1": tr.mibps})
	if strings.Contains(label, "express") {
		r.express = append(r.express, expressRun{label, lr})
	}
}

type expressRun struct {
	label string
	lat   latencyResult
}

func (r *report) addConsume(res map[string]consumeResult) {
	r.cons = res
	const sec = "consume"
	var w string
	passes := 0
	for _, c := range res {
		w, passes = fmt.Sprintf("%.0f MiB of 1 KiB records, 8p", c.mib), c.passes
	}
	r.add(sec, fmt.Sprintf("consume cold (from S3), median of %d", passes), w, "MiB/s", pick(res, func(c consumeResult) float64 { return c.cold }))
	r.add(sec, "  slowest cold read", w, "MiB/s", pick(res, func(c consumeResult) float64 { return c.coldRange[0] }))
	r.add(sec, "  fastest cold read", w, "MiB/s", pick(res, func(c consumeResult) float64 { return c.coldRange[1] }))
	r.add(sec, fmt.Sprintf("consume warm (agent cache), median of %d", passes), w, "MiB/s", pick(res, func(c consumeResult) float64 { return c.warm }))
	r.add(sec, "  slowest warm read", w, "MiB/s", pick(res, func(c consumeResult) float64 { return c.warmRng[0] }))
	r.add(sec, "  fastest warm read", w, "MiB/s", pick(res, func(c consumeResult) float64 { return c.warmRng[1] }))
	r.add(sec, "S3 GETs/s during cold read, busiest agent", w, "/s", shOnly(pick(res, func(c consumeResult) float64 { return c.gets })))
	r.add(sec, "S3 GETs/s during warm read, busiest agent", w, "/s", shOnly(pick(res, func(c consumeResult) float64 { return c.warmGets })))
	if _, ok := res["kfake"]; ok {
		r.note("consume: kfake reads from memory either way; its cold and warm figures are both the median of all its %d reads", 2*passes)
	}
}

// addProfileConsume adds the consume figures of a one-agent cluster under a latency profile.
func (r *report) addProfileConsume(label string, c consumeResult) {
	w := fmt.Sprintf("%.0f MiB of 1 KiB records, 8p, %s", c.mib, label)
	r.add("consume", "consume cold (from S3)", w, "MiB/s", map[string]float64{"sh-1": c.cold})
	r.add("consume", "consume warm (agent cache)", w, "MiB/s", map[string]float64{"sh-1": c.warm})
	r.add("consume", "S3 GETs/s during cold read, busiest agent", w, "/s", map[string]float64{"sh-1": c.gets})
}

func (r *report) addProcs(p procResult) {
	r.procs = &p
	const sec = "agent processes (3 x streamhouse agent)"
	idle := fmt.Sprintf("%d partitions idle", p.partitions)
	r.add(sec, "agent RSS, largest", idle, "MiB", map[string]float64{"sh-3": p.idleRSS})
	r.add(sec, "etcd requests/s, all agents", idle, "/s", map[string]float64{"sh-3": p.idleEtcdRPS})
	r.add(sec, "produce", p.load.String(), "MiB/s", map[string]float64{"sh-3": p.loadMiBps})
	r.add(sec, "agent CPU, sum of agents (/proc)", p.load.String(), "CPU-s/GiB", map[string]float64{"sh-3": p.cpuPerGiB})
	r.add(sec, "agent peak RSS, largest", "after "+p.load.String(), "MiB", map[string]float64{"sh-3": p.peakRSS})
}

func (r *report) addPeakRSS(mib float64) {
	r.add("process", "peak RSS of the bench process (every target, clients)", "whole suite", "MiB", map[string]float64{"sh-1": mib})
}

// finish lays out the produce rows and judges the targets.
func (r *report) finish() {
	var specs []produceSpec
	for _, s := range fullPlan().throughput {
		if _, ok := r.tput[s]; ok {
			specs = append(specs, s)
		}
	}
	rows := r.Rows
	r.Rows = nil
	r.throughputRows(specs)
	r.Rows = append(r.Rows, rows...)
	// Rows of one section together, sections in the order they first appear.
	order := map[string]int{}
	for _, row := range r.Rows {
		if _, ok := order[row.Section]; !ok {
			order[row.Section] = len(order)
		}
	}
	sort.SliceStable(r.Rows, func(i, j int) bool { return order[r.Rows[i].Section] < order[r.Rows[j].Section] })
	r.Seconds = time.Since(r.Started).Seconds()
	r.Machine.LoadAfter = loadAvg()
	r.judge()
}

func (r *report) judge() {
	ratio := func(spec produceSpec, sh string) float64 {
		res := r.tput[spec]
		k, ok1 := res["kfake"]
		s, ok2 := res[sh]
		if !ok1 || !ok2 || k.mibps == 0 {
			return nan
		}
		return s.mibps / k.mibps
	}
	for _, c := range produceTargets {
		for _, sh := range []string{"sh-1", "sh-3"} {
			if x := ratio(c.spec, sh); !math.IsNaN(x) {
				r.verdict(fmt.Sprintf("produce %s: %s >= %.1fx kfake", c.spec, sh, c.want), fmt.Sprintf("%.2fx", x), x >= c.want)
			}
		}
	}
	// S3 PUTs and etcd Txns at one fixed load, 8 and 1,024 partitions. At saturation flushes start
	// on size (Config.FlushBytes) and both follow throughput: the throughput rows show those.
	for _, sh := range []string{"sh-1", "sh-3"} {
		w, ok := r.wide[sh]
		if !ok {
			continue
		}
		bound := 1000/w[0].flush + 1
		for _, l := range w {
			r.verdict(fmt.Sprintf("S3 PUTs/s per agent <= 1/flush-interval + 1 = %.0f at %.0f records/s (%s, %dp)", bound, l.rate, sh, l.partitions),
				fmt.Sprintf("%.1f/s", l.puts), l.puts <= bound)
		}
		r.verdict(fmt.Sprintf("etcd Txns/s independent of partitions at %.0f records/s (%s, 8p vs 1,024p, within 1.5x)", w[0].rate, sh),
			fmt.Sprintf("%.1f vs %.1f /s", w[0].txns, w[1].txns), w[1].txns <= 1.5*w[0].txns+1)
	}
	for _, sh := range []string{"sh-1", "sh-3"} {
		if l, ok := r.lat[sh]; ok {
			// Per record, as a franz-go producer with default settings sees it (the records' wait for
			// a free request slot included), and per produce request (the agent's own).
			o := l.p99 - l.floor()
			r.verdict(fmt.Sprintf("produce p99 overhead over the floor <= 10 ms at 50%% load or the rate cap, per record (%s)", sh), fmt.Sprintf("%.1f ms", o), o <= 10)
			o = l.req99 - l.floor()
			r.verdict(fmt.Sprintf("produce p99 overhead over the floor <= 10 ms at 50%% load or the rate cap, per request (%s)", sh), fmt.Sprintf("%.1f ms", o), o <= 10)
		}
	}
	for _, e := range r.express {
		r.verdict("produce p99 <= 50 ms ("+e.label+")", fmt.Sprintf("%.1f ms", e.lat.p99), e.lat.p99 <= 50)
	}
	if k, ok := r.cons["kfake"]; ok {
		for _, sh := range []string{"sh-1", "sh-3"} {
			if c, ok := r.cons[sh]; ok {
				r.verdict(fmt.Sprintf("consume warm >= 1.0x kfake (%s)", sh), fmt.Sprintf("%.2fx", c.warm/k.warm), c.warm >= k.warm)
				r.verdict(fmt.Sprintf("consume cold >= 0.7x kfake (%s)", sh), fmt.Sprintf("%.2fx", c.cold/k.cold), c.cold >= 0.7*k.cold)
			}
		}
	}
	if t, ok := r.tput[eightProducers]["sh-1"]; ok {
		x := t.brokerCPUPerGiB()
		r.verdict("agent CPU <= 10 CPU-s/GiB (sh-1, in-process, pprof labels, "+eightProducers.String()+")", fmt.Sprintf("%.1f", x), x <= 10)
	}
	r.judgeHistory()
	if p := r.procs; p != nil {
		r.verdict("agent CPU <= 10 CPU-s/GiB (agent processes, /proc, "+p.load.String()+")", fmt.Sprintf("%.1f", p.cpuPerGiB), p.cpuPerGiB <= 10)
		r.verdict(fmt.Sprintf("%d partitions idle on 3 agents: RSS <= 150 MiB each", p.partitions), fmt.Sprintf("%.0f MiB", p.idleRSS), p.idleRSS <= 150)
		r.verdict(fmt.Sprintf("%d partitions idle on 3 agents: etcd requests/s <= 5", p.partitions), fmt.Sprintf("%.1f/s", p.idleEtcdRPS), p.idleEtcdRPS <= 5)
	}
}

func (r *report) verdict(target, measured string, met bool) {
	r.Verdicts = append(r.Verdicts, verdict{Target: target, Measured: measured, Met: met})
}

// print writes the table: one row per figure and workload, the targets' values, then the ratios.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nStreamHouse vs kfake, suite %s: %d CPUs (%s), %s, load average %s before and %s after, %.0fs\n",
		r.Suite, r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.LoadBefore, r.Machine.LoadAfter, r.Seconds)
	fmt.Fprintf(w, "sh-1, sh-3: StreamHouse dev mode in this process (embedded etcd, embedded S3, 1 or 3 agents); sh-1-sec: sh-1 over "+
		"SASL_SSL (TLS, SCRAM-SHA-512, ACLs on); kfake: franz-go's in-memory broker\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.Debug)
	header := []string{"figure", "workload", "unit"}
	var cols, rcols []string
	for _, c := range columns {
		if r.hasColumn(c) {
			cols = append(cols, c)
		}
	}
	for _, c := range ratios {
		if r.hasColumn(c) && r.hasColumn("kfake") {
			rcols = append(rcols, c+"/kfake")
		}
	}
	if r.hasColumn("sh-1-sec") && r.hasColumn("sh-1") {
		rcols = append(rcols, secRatio)
	}
	header = append(header, cols...)
	header = append(header, rcols...)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	section := ""
	for _, row := range r.Rows {
		if row.Section != section {
			section = row.Section
			fmt.Fprintf(tw, "%s%s\n", "["+section+"]", strings.Repeat("\t", len(header)))
		}
		cells := []string{row.Figure, row.Workload, row.Unit}
		for _, c := range cols {
			cells = append(cells, num(row.Values, c))
		}
		for _, c := range rcols {
			if x, ok := row.Ratios[c]; ok {
				cells = append(cells, fmt.Sprintf("%.2fx", x))
			} else {
				cells = append(cells, "-")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintln(w, "\ntargets of the issue:")
	for _, v := range r.Verdicts {
		mark := "MISSED"
		if v.Met {
			mark = "met"
		}
		fmt.Fprintf(w, "  %-6s %s: %s\n", mark, v.Target, v.Measured)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// hasColumn reports whether any row has a value for target c.
func (r *report) hasColumn(c string) bool {
	for _, row := range r.Rows {
		if _, ok := row.Values[c]; ok {
			return true
		}
	}
	return false
}

func num(v map[string]float64, k string) string {
	x, ok := v[k]
	switch {
	case !ok:
		return "-"
	case math.Abs(x) >= 1000:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
