package fault

import (
	"context"
	"errors"
	"fmt"
)

// MemberKill kills one etcd member that does not lead (a follower) with SIGKILL and starts it again
// on its data when healed. Two members keep a quorum and the leader: clients should see nothing but
// a reconnection. (LeaderKill kills the leader.) Pick chooses among the followers.
type MemberKill struct {
	Pick   int
	killed string
}

func (f *MemberKill) Name() string { return NameMemberKill }
func (f *MemberKill) String() string {
	if f.killed != "" {
		return fmt.Sprintf("%s %s (a follower)", NameMemberKill, f.killed)
	}
	return NameMemberKill + " (a follower)"
}
func (f *MemberKill) Inject(ctx context.Context, c Cluster) error {
	leader, err := c.EtcdLeader(ctx)
	if err != nil {
		return err
	}
	var followers []string
	for _, m := range c.Members() {
		if m != leader {
			followers = append(followers, m)
		}
	}
	if len(followers) == 0 {
		return errors.New("no follower to kill")
	}
	f.killed = followers[f.Pick%len(followers)]
	return c.KillMember(f.killed)
}
func (f *MemberKill) Heal(ctx context.Context, c Cluster) error {
	if f.killed == "" {
		return errors.New("no member was killed")
	}
	return c.StartMember(ctx, f.killed)
}

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

// EtcdNoSpace raises etcd's NOSPACE alarm, as a member whose database reached its quota does, and
// disarms it when healed: for its hold, etcd refuses every write that adds data (a commit, a group
// write, a leader-key acquisition, a lease grant) while reads, deletions and lease keep-alives go on.
// Agents keep their sessions and their leader keys but cannot commit: produce fails "maybe written"
// (REQUEST_TIMED_OUT), a partition whose commit failed is dropped, and leading it again fails until
// the alarm is disarmed. Nothing outside the agents acts on them: they must lead every partition again
// by themselves once etcd takes writes.
type EtcdNoSpace struct{ member string }

func (f *EtcdNoSpace) Name() string { return NameEtcdNoSpace }
func (f *EtcdNoSpace) String() string {
	if f.member != "" {
		return fmt.Sprintf("%s (alarm on %s)", NameEtcdNoSpace, f.member)
	}
	return NameEtcdNoSpace
}
func (f *EtcdNoSpace) Inject(ctx context.Context, c Cluster) error {
	m, err := c.RaiseEtcdAlarm(ctx)
	f.member = m
	return err
}
func (f *EtcdNoSpace) Heal(ctx context.Context, c Cluster) error { return c.DisarmEtcdAlarms(ctx) }
