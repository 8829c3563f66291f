package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/checker"
	"github.com/streamhouse/streamhouse/e2e/chaos/fault"
	"github.com/streamhouse/streamhouse/e2e/chaos/history"
	"github.com/streamhouse/streamhouse/e2e/chaos/workload"
)

// shownAnomalies is how many anomalies the summary lists; anomalies.jsonl has them all.
const shownAnomalies = 20

// results is what the run measured and the checker found.
type results struct {
	check      checker.Result
	outages    map[string]map[history.TP]checker.Outage
	stats      workload.Stats
	partitions []history.TP
	txn        *workload.TxnStats // nil: no transactional workload
}

// report prints the summary, writes it with the anomalies and the unavailability table to the
// output directory, and says whether the run passed.
func (r *runner) report(res *results) (bool, error) {
	var b bytes.Buffer
	r.summary(&b, res)
	pass := len(r.fails) == 0 && res != nil && res.check.OK()
	fmt.Fprintf(&b, "\nresult: %s (seed %d; history, anomalies and logs in %s)\n", map[bool]string{true: "PASS", false: "FAIL"}[pass],
		r.cfg.seed, r.cfg.out)
	os.Stdout.Write(b.Bytes())
	err := os.WriteFile(filepath.Join(r.cfg.out, "summary.txt"), b.Bytes(), 0o644)
	if res != nil {
		err = cmp.Or(err, writeAnomalies(filepath.Join(r.cfg.out, "anomalies.jsonl"), res.check.Anomalies),
			writeUnavailability(filepath.Join(r.cfg.out, "unavailability.tsv"), res))
	}
	return pass, err
}

func (r *runner) summary(w io.Writer, res *results) {
	fmt.Fprintf(w, "\n== chaos summary: seed %d, mode %s, %d agents, 3 etcd members, lease TTL %v, %v ==\n",
		r.cfg.seed, r.cfg.mode, r.cfg.agents, r.cfg.ttl, time.Since(r.log.start).Round(time.Second))
	if res != nil {
		c := res.check
		fmt.Fprintf(w, "\nrecords: %d sent, %d acknowledged, %d failed, %d indeterminate; %d read (every consumer); %d group commits acknowledged; %d partitions\n",
			c.Sends, c.Acked, c.Failed, c.Indeterminate, c.Reads, c.Commits, c.Partitions)
		if len(res.stats.ProduceErrors) > 0 {
			fmt.Fprintf(w, "send errors seen by producers: %s\n", topCounts(res.stats.ProduceErrors, 6))
		}
		if t := res.txn; t != nil {
			fmt.Fprintf(w, "transactions: %d committed, %d aborted (on purpose or after an error), %d indeterminate; %d records read read_committed; final drain complete: %v\n",
				c.Txn.Committed, c.Txn.Aborted, c.Txn.Indeterminate, c.Txn.Reads, c.Txn.Drained)
			if len(t.Errors) > 0 {
				fmt.Fprintf(w, "transaction errors: %s\n", topCounts(t.Errors, 6))
			}
		}
	}
	r.faultTable(w)
	if res != nil {
		anomalyTable(w, res.check)
		outageTable(w, res)
	}
	for _, s := range r.steps {
		if s.report != "" {
			fmt.Fprintf(w, "%s: %s\n", s.step.Fault.Name(), s.report)
		}
	}
	if len(r.fails) > 0 {
		fmt.Fprintf(w, "\nfailures (%d):\n", len(r.fails))
		for _, f := range r.fails {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
}

// faultTable prints, per fault kind, how often it was injected, how often that failed, and the
// longest recovery after healing.
func (r *runner) faultTable(w io.Writer) {
	type row struct {
		injected, failed, unrecovered int
		recovery                      time.Duration
	}
	rows := map[string]*row{}
	for _, s := range r.steps {
		k := s.step.Fault.Name()
		if rows[k] == nil {
			rows[k] = &row{}
		}
		rw := rows[k]
		rw.injected++
		if s.injectErr != nil || s.healErr != nil {
			rw.failed++
		}
		if !s.recovered {
			rw.unrecovered++
		}
		rw.recovery = max(rw.recovery, s.recovery)
	}
	fmt.Fprintf(w, "\nfaults injected: %d (%d kinds)\n", len(r.steps), len(rows))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  fault\tinjected\tfailed\tnot recovered\tlongest recovery after heal")
	for _, k := range fault.Names {
		rw, ok := rows[k]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%v\n", k, rw.injected, rw.failed, rw.unrecovered, rw.recovery.Round(10*time.Millisecond))
	}
	tw.Flush()
}

func anomalyTable(w io.Writer, c checker.Result) {
	fmt.Fprintf(w, "\nanomalies: %d\n", len(c.Anomalies))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, k := range checker.Kinds {
		fmt.Fprintf(tw, "  %s\t%d\n", k, c.Count(k))
	}
	tw.Flush()
	for i, a := range c.Anomalies {
		if i == shownAnomalies {
			fmt.Fprintf(w, "  … %d more in anomalies.jsonl\n", len(c.Anomalies)-shownAnomalies)
			break
		}
		fmt.Fprintf(w, "  %v\n", a)
	}
}

// outageTable prints, per fault kind, the longest time a partition went without an acknowledged
// send while the fault was in effect: the worst partition, the median partition, how many went a
// second or more; then the whole table, fault kinds by partitions, in seconds.
func outageTable(w io.Writer, res *results) {
	fmt.Fprintf(w, "\nlongest unavailability (no send acknowledged) per partition while a fault was in effect:\n")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  fault\tworst\tpartition\tmedian\tpartitions ≥ 1s")
	for _, k := range fault.Names {
		byTP, ok := res.outages[k]
		if !ok {
			continue
		}
		var ds []time.Duration
		worst := checker.Outage{}
		for _, o := range byTP {
			ds = append(ds, o.Longest)
			if o.Longest > worst.Longest {
				worst = o
			}
		}
		slices.Sort(ds)
		over := 0
		for _, d := range ds {
			if d >= time.Second {
				over++
			}
		}
		fmt.Fprintf(tw, "  %s\t%v\t%v\t%v\t%d/%d\n", k, worst.Longest.Round(10*time.Millisecond), worst.TP,
			ds[len(ds)/2].Round(10*time.Millisecond), over, len(res.partitions))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n  per partition, seconds:\n")
	tw = tabwriter.NewWriter(w, 2, 8, 1, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "  fault\t")
	for _, tp := range res.partitions {
		fmt.Fprintf(tw, "%s/%d\t", strings.TrimPrefix(tp.Topic, "chaos-"), tp.Partition)
	}
	fmt.Fprintln(tw)
	for _, k := range fault.Names {
		byTP, ok := res.outages[k]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "  %s\t", k)
		for _, tp := range res.partitions {
			fmt.Fprintf(tw, "%.1f\t", byTP[tp].Longest.Seconds())
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func topCounts(m map[string]int, n int) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, fmt.Sprintf("… %d more kinds", len(keys)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%q ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func writeAnomalies(path string, as []checker.Anomaly) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, a := range as {
		if err := enc.Encode(a); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func writeUnavailability(path string, res *results) error {
	var b bytes.Buffer
	fmt.Fprintln(&b, "fault\ttopic\tpartition\tlongest_seconds\tfrom")
	for _, k := range fault.Names {
		for _, tp := range res.partitions {
			if o, ok := res.outages[k][tp]; ok {
				fmt.Fprintf(&b, "%s\t%s\t%d\t%.3f\t%s\n", k, tp.Topic, tp.Partition, o.Longest.Seconds(), o.From.Format(time.RFC3339Nano))
			}
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
