package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// member is one etcd member process.
type member struct {
	name        string
	client      string // host:port
	peer        string // host:port
	dir         string
	incarnation int
	proc        *proc
}

func (m *member) clientURL() string { return "http://" + m.client }
func (m *member) peerURL() string   { return "http://" + m.peer }

// newMembers picks the addresses of n members.
func newMembers(dir string, n int) ([]*member, error) {
	var ms []*member
	for i := 1; i <= n; i++ {
		client, err := freeAddr()
		if err != nil {
			return nil, err
		}
		peer, err := freeAddr()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("etcd%d", i)
		ms = append(ms, &member{name: name, client: client, peer: peer, dir: filepath.Join(dir, "etcd", name)})
	}
	return ms, nil
}

func initialCluster(ms []*member) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, m.name+"="+m.peerURL())
	}
	return strings.Join(parts, ",")
}

// startMembers starts every member at once (a new cluster needs a quorum to become ready) and waits
// until each is ready.
func (c *Cluster) startMembers(ctx context.Context) error {
	for _, m := range c.members {
		if err := c.launchMember(m); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.members))
	for i, m := range c.members {
		wg.Go(func() { errs[i] = m.proc.waitReady(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) launchMember(m *member) error {
	m.incarnation++
	logPath := filepath.Join(c.cfg.Dir, "logs", fmt.Sprintf("%s.log", m.name))
	p, err := startProc(fmt.Sprintf("%s#%d", m.name, m.incarnation), logPath, c.cfg.EtcdBin, nil,
		"--name", m.name, "--dir", m.dir, "--client-addr", m.client, "--peer-addr", m.peer,
		"--initial-cluster", initialCluster(c.members), "--log-level", "warn")
	if err != nil {
		return err
	}
	m.proc = p
	return nil
}

func (c *Cluster) member(name string) (*member, error) {
	for _, m := range c.members {
		if m.name == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no etcd member %q", name)
}

// Members are the names of the etcd members.
func (c *Cluster) Members() []string {
	var names []string
	for _, m := range c.members {
		names = append(names, m.name)
	}
	return names
}

// KillMember kills an etcd member with SIGKILL.
func (c *Cluster) KillMember(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(name)
	if err != nil {
		return err
	}
	c.logf("kill -9 %s (pid %d)", name, m.proc.pid())
	return m.proc.kill()
}

// StartMember starts a stopped member again on its data directory and waits until it is ready.
func (c *Cluster) StartMember(ctx context.Context, name string) error {
	c.mu.Lock()
	m, err := c.member(name)
	if err == nil && !m.proc.exited() {
		err = fmt.Errorf("%s is running", name)
	}
	if err == nil {
		err = c.launchMember(m)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.logf("started %s again (pid %d)", name, m.proc.pid())
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return m.proc.waitReady(ctx)
}

// EtcdLeader is the name of the member that leads the etcd cluster now.
func (c *Cluster) EtcdLeader(ctx context.Context) (string, error) {
	var errs []error
	for _, m := range c.runningMembers() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.etcd.Etcd().Status(sctx, m.clientURL())
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.name, err))
			continue
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberId {
			return m.name, nil
		}
	}
	return "", fmt.Errorf("no member says it leads: %w", errors.Join(errs...))
}

func (c *Cluster) runningMembers() []*member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms []*member
	for _, m := range c.members {
		if !m.proc.exited() {
			ms = append(ms, m)
		}
	}
	return ms
}

// etcdHealthy checks that every member runs, that each agrees on one leader and that no alarm is
// raised.
func (c *Cluster) etcdHealthy(ctx context.Context) error {
	running := c.runningMembers()
	if len(running) != len(c.members) {
		return fmt.Errorf("%d of %d etcd members running", len(running), len(c.members))
	}
	var leader uint64
	for _, m := range running {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.etcd.Etcd().Status(sctx, m.clientURL())
		cancel()
		if err != nil {
			return fmt.Errorf("etcd member %s: %w", m.name, err)
		}
		if st.Leader == 0 || (leader != 0 && st.Leader != leader) {
			return fmt.Errorf("etcd member %s sees leader %x", m.name, st.Leader)
		}
		leader = st.Leader
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return alarmsRaised(sctx, c.etcd.Etcd())
}

func (c *Cluster) memberEndpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL())
	}
	return eps
}

// RaiseEtcdAlarm raises etcd's NOSPACE alarm (RaiseNoSpace) and returns the member it names.
func (c *Cluster) RaiseEtcdAlarm(ctx context.Context) (string, error) {
	name, err := RaiseNoSpace(ctx, c.etcd.Etcd())
	if err == nil {
		c.logf("etcd NOSPACE alarm raised (on %s): writes refused", name)
	}
	return name, err
}

// DisarmEtcdAlarms disarms every etcd alarm.
func (c *Cluster) DisarmEtcdAlarms(ctx context.Context) error {
	err := DisarmAlarms(ctx, c.etcd.Etcd())
	if err == nil {
		c.logf("etcd alarms disarmed")
	}
	return err
}

// RaiseNoSpace raises etcd's NOSPACE alarm on one member of cli's cluster, as a member whose database
// reached its quota does itself. While it is raised the whole cluster refuses every request that would
// add data (puts, Txns with a put in either branch, lease grants) with "database space exceeded";
// reads, deletions, lease revocations and lease keep-alives go on. clientv3 only disarms alarms: the
// raw Maintenance API raises one. It returns the member's name.
func RaiseNoSpace(ctx context.Context, cli *clientv3.Client) (string, error) {
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return "", fmt.Errorf("etcd alarm: list members: %w", err)
	}
	if len(ml.Members) == 0 {
		return "", errors.New("etcd alarm: no member")
	}
	m := ml.Members[0]
	_, err = pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: m.ID, Alarm: pb.AlarmType_NOSPACE})
	if err != nil {
		return "", fmt.Errorf("etcd alarm: raise NOSPACE on %s: %w", m.Name, err)
	}
	return m.Name, nil
}

// DisarmAlarms disarms every alarm of cli's cluster.
func DisarmAlarms(ctx context.Context, cli *clientv3.Client) error {
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil { // zero: every alarm raised
		return fmt.Errorf("etcd alarm: disarm: %w", err)
	}
	return nil
}

// alarmsRaised reports etcd's raised alarms, if any.
func alarmsRaised(ctx context.Context, cli *clientv3.Client) error {
	resp, err := cli.AlarmList(ctx)
	if err != nil {
		return fmt.Errorf("etcd alarms: %w", err)
	}
	if len(resp.Alarms) > 0 {
		return fmt.Errorf("etcd alarm raised: %v", resp.Alarms)
	}
	return nil
}
