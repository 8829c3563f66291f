package fault

import (
	"context"
	"errors"
	"fmt"
)

// MemberKill kills one etcd member with SIGKILL and starts it again on its data when healed. Two
// members keep a quorum: clients should see nothing but a reconnection.
type MemberKill struct{ Member string }

func (f *MemberKill) Name() string   { return NameMemberKill }
func (f *MemberKill) String() string { return fmt.Sprintf("%s %s", NameMemberKill, f.Member) }
func (f *MemberKill) Inject(ctx context.Context, c Cluster) error {
	return c.KillMember(f.Member)
}
func (f *MemberKill) Heal(ctx context.Context, c Cluster) error { return c.StartMember(ctx, f.Member) }

// LeaderKill kills whichever etcd member leads at the time with SIGKILL, forcing an election while
// requests are in flight, and starts it again when healed.
type LeaderKill struct{ killed string }

func (f *LeaderKill) Name() string { return NameLeaderKill }
func (f *LeaderKill) String() string {
	if f.killed != "" {
		return fmt.Sprintf("%s %s", NameLeaderKill, f.killed)
	}
	return NameLeaderKill
}
func (f *LeaderKill) Inject(ctx context.Context, c Cluster) error {
	leader, err := c.EtcdLeader(ctx)
	if err != nil {
		return err
	}
	f.killed = leader
	return c.KillMember(leader)
}
func (f *LeaderKill) Heal(ctx context.Context, c Cluster) error {
	if f.killed == "" {
		return errors.New("no member was killed")
	}
	return c.StartMember(ctx, f.killed)
}
