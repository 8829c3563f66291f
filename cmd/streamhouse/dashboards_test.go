package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"
)

// Files under deploy/ that name metrics.
const (
	grafanaDashboard = "../../deploy/grafana/streamhouse.json"
	prometheusAlerts = "../../deploy/prometheus/alerts.yml"
)

var metricName = regexp.MustCompile(`\bstreamhouse_[a-z0-9_]+`)

// The Grafana dashboard and the Prometheus alerts load, and every streamhouse_ metric they name is in a
// running agent's /metrics (a histogram's _bucket, _sum and _count by the histogram's name), so that
// no panel or alert silently shows nothing after a metric is renamed.
func TestDashboardMetricsExist(t *testing.T) {
	exprs := append(grafanaExprs(t), alertExprs(t)...)
	named := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			named[m] = true
		}
	}
	if len(named) < 20 {
		t.Fatalf("only %d metrics named in the dashboards: %v", len(named), named)
	}

	d := startDev(t, t.TempDir(), "--gc-interval", "1s")
	traffic(t, d.line(t, "kafka address"))
	// Some appear only once the agent did the work they count (GC's first pass sets the object gauges):
	// scrape until all are there, or long past when they should be.
	var missing []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		types := exposedTypes(t, d.line(t, "http address")+"/metrics")
		missing = missing[:0]
		for m := range named {
			if !exposed(types, m) {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling /metrics, not waiting for an event
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("metrics named in deploy/ but not in an agent's /metrics: %s", strings.Join(missing, ", "))
	}
}

// exposed says whether a metric the dashboards name is in /metrics: by its name, or as a series of a
// histogram or summary.
func exposed(types map[string]string, name string) bool {
	if _, ok := types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && (types[base] == "histogram" || types[base] == "summary") {
			return true
		}
	}
	return false
}

// grafanaExprs loads the dashboard and returns every panel's queries.
func grafanaExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(grafanaDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", grafanaDashboard, err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("%s: no title, uid or panels", grafanaDashboard)
	}
	var out []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// alertExprs loads the rules file as Prometheus reads it and returns every rule's expression.
func alertExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(prometheusAlerts)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s: %v", prometheusAlerts, err)
	}
	var out []string
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: want alert, expr, labels.severity and annotations.summary", r)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
			}
			alerts[r.Alert] = true
			out = append(out, r.Expr)
		}
	}
	for _, want := range []string{"StreamHouseAgentDown", "StreamHousePartitionsWithoutLeader", "StreamHouseConsumerLagGrowing",
		"StreamHouseEtcdNearQuota", "StreamHouseS3Errors"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
	return out
}

// traffic produces and consumes with a group, so that the metrics that appear with use exist.
func traffic(t *testing.T, kafka string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumerGroup("dash"), kgo.ConsumeTopics("dash"),
		kgo.DefaultProduceTopic("dash"), kgo.DisableAutoCommit(), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for got := 0; got < 10; {
		fs := cl.PollRecords(ctx, 10)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
}

// exposedTypes reads /metrics: each metric's TYPE by name.
func exposedTypes(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	return types
}
