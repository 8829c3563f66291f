package agent

import (
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamhouse/streamhouse/coord"
)

// While etcd reports NOSPACE (it refuses every write), /readyz says so and the alarm's gauge is 1; once
// the alarm is disarmed, the agent is ready again by itself.
func TestReadyzReportsEtcdAlarm(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	tc := newTestCluster(t)
	a := startAgent(t, newAgentVia(t, tc, "a1", e.Endpoints()[0], tc.store))
	if code, body := readyz(t, a); code != http.StatusOK {
		t.Fatalf("readyz before the alarm: %d %s", code, body)
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	status, err := raw.Status(ctx, e.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewMaintenanceClient(raw.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: status.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	a.checkEtcdHealth(ctx)
	if code, body := readyz(t, a); code != http.StatusServiceUnavailable || !strings.Contains(body, "NOSPACE") {
		t.Fatalf("readyz with NOSPACE raised: %d %q", code, body)
	}
	if got := gaugeValue(t, a, "streamhouse_etcd_alarm", "NOSPACE"); got != 1 {
		t.Fatalf("streamhouse_etcd_alarm{type=NOSPACE} = %v, want 1", got)
	}
	if _, err := raw.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: status.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	a.checkEtcdHealth(ctx)
	if code, body := readyz(t, a); code != http.StatusOK {
		t.Fatalf("readyz after the alarm was disarmed: %d %s", code, body)
	}
	if got := gaugeValue(t, a, "streamhouse_etcd_keys", ""); got <= 0 {
		t.Fatalf("streamhouse_etcd_keys = %v", got)
	}
}

// gaugeValue reads a gauge of the agent's registry: the series with a label of value label, or the
// first one when label is empty.
func gaugeValue(t *testing.T, a *Agent, name, label string) float64 {
	t.Helper()
	if label == "" {
		return metricValue(t, a, name)
	}
	return labelledSeries(t, a, name, label).GetGauge().GetValue()
}

// labelledSeries is the series of metric name in a's registry with a label of value label.
func labelledSeries(t *testing.T, a *Agent, name, label string) *dto.Metric {
	t.Helper()
	mfs, err := a.cfg.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetValue() == label {
					return m
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return nil
}
