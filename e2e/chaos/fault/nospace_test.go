package fault

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/e2e/chaos/cluster"
)

// alarmCluster is a fake cluster whose etcd alarms are a real etcd's.
type alarmCluster struct {
	*fake
	cli *clientv3.Client
}

func (c *alarmCluster) RaiseEtcdAlarm(ctx context.Context) (string, error) {
	return cluster.RaiseNoSpace(ctx, c.cli)
}
func (c *alarmCluster) DisarmEtcdAlarms(ctx context.Context) error {
	return cluster.DisarmAlarms(ctx, c.cli)
}

// The etcd-nospace fault makes a real etcd refuse every write that adds data (what an agent's
// commit, acquisition or registration needs) while reads, deletions and lease keep-alives go on;
// healed, etcd takes writes again.
func TestEtcdNoSpaceRefusesWritesAndHeals(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}

	f := &EtcdNoSpace{}
	c := &alarmCluster{fake: newFake(), cli: cli}
	if err := f.Inject(ctx, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.String(), "alarm on ") {
		t.Errorf("String() = %q does not name the member", f.String())
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rpctypes.ErrNoSpace) {
			t.Errorf("%s with the alarm raised: %v, want %v", what, err, rpctypes.ErrNoSpace)
		}
	}
	_, err = cli.Put(ctx, "k", "w")
	refused("put", err)
	_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("leader"), "=", 0)).
		Then(clientv3.OpPut("leader", "a")).Else(clientv3.OpGet("leader")).Commit()
	refused("acquisition Txn", err)
	_, err = cli.Grant(ctx, 30)
	refused("lease grant", err)
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Errorf("lease keep-alive with the alarm raised: %v", err)
	}
	if resp, err := cli.Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Errorf("read with the alarm raised: %v, %v", resp, err)
	}

	if err := f.Heal(ctx, c); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.AlarmList(ctx); err != nil || len(resp.Alarms) != 0 {
		t.Fatalf("alarms after heal: %v, %v", resp, err)
	}
	if _, err := cli.Put(ctx, "k", "w"); err != nil {
		t.Fatalf("put after heal: %v", err)
	}
	if _, err := cli.Grant(ctx, 30); err != nil {
		t.Fatalf("lease grant after heal: %v", err)
	}
}
