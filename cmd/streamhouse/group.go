package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/internal/progress"
)

var groupCommands = []command{
	{"list", "list consumer groups", (*cli).groupList},
	{"describe", "show a group's state, members, committed offsets and lag", (*cli).groupDescribe},
	{"reset-offsets", "move a group's committed offsets of a topic (the group must have no members)", (*cli).groupResetOffsets},
}

func (c *cli) group(args []string) error { return c.subcommand("group", groupCommands, args) }

func (c *cli) groupList(args []string) error {
	fs := c.newFlagSet("group list", "", "List the consumer groups, with their state and protocol type.")
	brokers := fs.brokersFlag()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		groups, err := adm.ListGroups(ctx)
		if err != nil {
			return fmt.Errorf("list groups: %w", err)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL TYPE\tCOORDINATOR")
		for _, name := range groups.Groups() {
			g := groups[name]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", g.Group, g.State, dash(g.ProtocolType), g.Coordinator)
		}
		return tw.Flush()
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) groupDescribe(args []string) error {
	fs := c.newFlagSet("group describe", "GROUP",
		"Show a consumer group: its state, protocol, members and what each is assigned, and per partition\n"+
			"the committed offset, the log end offset and the lag between them.")
	brokers := fs.brokersFlag()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		name := pos[0]
		lags, err := adm.Lag(ctx, name)
		if err != nil {
			return fmt.Errorf("describe group %s: %w", name, err)
		}
		gl, ok := lags[name]
		if !ok {
			return fmt.Errorf("describe group %s: no answer for the group", name)
		}
		if err := gl.Error(); err != nil {
			return fmt.Errorf("describe group %s: %w", name, err)
		}
		return printGroup(c.stdout, gl)
	})
}

func printGroup(w io.Writer, gl kadm.DescribedGroupLag) error {
	protocol := gl.ProtocolType
	if gl.Protocol != "" {
		protocol += " (" + gl.Protocol + ")"
	}
	fmt.Fprintf(w, "group: %s\nstate: %s\nprotocol: %s\ncoordinator: %d\nmembers: %d\n", gl.Group, gl.State,
		dash(protocol), gl.Coordinator.NodeID, len(gl.Members))
	if len(gl.Members) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tINSTANCE\tCLIENT\tHOST\tASSIGNED")
		for _, m := range gl.Members {
			inst := "-"
			if m.InstanceID != nil {
				inst = *m.InstanceID
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.MemberID, inst, m.ClientID, m.ClientHost, assigned(m))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tLOG END\tLAG\tMEMBER")
	for _, l := range gl.Lag.Sorted() {
		committed, end, lag, member := "-", "-", "-", "-"
		if l.Commit.At >= 0 {
			committed = fmt.Sprint(l.Commit.At)
		}
		if l.End.Err == nil {
			end = fmt.Sprint(l.End.Offset)
			lag = fmt.Sprint(l.Lag)
		}
		if l.Member != nil {
			member = l.Member.ClientID
		}
		if l.Err != nil {
			lag = l.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", l.Topic, l.Partition, committed, end, lag, member)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ntotal lag: %d\n", gl.Lag.Total())
	return nil
}

// assigned formats a consumer member's assignment as topic[p,p] topic[p].
func assigned(m kadm.DescribedGroupMember) string {
	ca, ok := m.Assigned.AsConsumer()
	if !ok || len(ca.Topics) == 0 {
		return "-"
	}
	var parts []string
	for _, t := range ca.Topics {
		ps := slices.Clone(t.Partitions)
		slices.Sort(ps)
		nums := make([]string, len(ps))
		for i, p := range ps {
			nums[i] = fmt.Sprint(p)
		}
		parts = append(parts, t.Topic+"["+strings.Join(nums, ",")+"]")
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// resetTarget says where reset-offsets moves each partition.
type resetTarget struct {
	earliest, latest bool
	offset           int64 // with neither: this offset, kept within the log
}

func (c *cli) groupResetOffsets(args []string) error {
	fs := c.newFlagSet("group reset-offsets", "GROUP",
		"Move a consumer group's committed offsets of one topic: to the start of the log, to its end, or to\n"+
			"an offset (kept within the log). As Kafka's tool, it refuses while the group has members: stop its\n"+
			"consumers first. The group's other topics keep their offsets.")
	topic := fs.String("topic", "", "the `topic` whose offsets to move (required)")
	partitions := fs.String("partitions", "", "comma-separated `partitions` to move (default: all of the topic's)")
	earliest := fs.Bool("to-earliest", false, "move to the first offset the log holds")
	latest := fs.Bool("to-latest", false, "move to the end of the log: skip everything produced so far")
	toOffset := fs.Int64("to-offset", -1, "move to this `offset`")
	dryRun := fs.Bool("dry-run", false, "print the new offsets without committing them")
	brokers := fs.brokersFlag()
	fs.require("topic")
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	target := resetTarget{earliest: *earliest, latest: *latest, offset: *toOffset}
	n := 0
	for _, set := range []bool{*earliest, *latest, *toOffset >= 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return usagef("group reset-offsets: give exactly one of --to-earliest, --to-latest and --to-offset N (N ≥ 0)")
	}
	only, err := parsePartitions(*partitions)
	if err != nil {
		return usagef("group reset-offsets: --partitions: %v", err)
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		return c.resetOffsets(ctx, adm, pos[0], *topic, only, target, *dryRun)
	})
}

func parsePartitions(s string) (map[int32]bool, error) {
	if s == "" {
		return nil, nil
	}
	out := map[int32]bool{}
	for _, f := range splitList(s) {
		var p int32
		if _, err := fmt.Sscan(f, &p); err != nil || p < 0 {
			return nil, fmt.Errorf("%q is not a partition number", f)
		}
		out[p] = true
	}
	return out, nil
}

func (c *cli) resetOffsets(ctx context.Context, adm *kadm.Client, group, topic string, only map[int32]bool, target resetTarget, dryRun bool) error {
	line := c.progress()
	defer line.Clear()
	line.Set("reset offsets of group %s: checking it has no members", group)
	if err := checkNoMembers(ctx, adm, group); err != nil {
		return err
	}
	line.Set("reset offsets of group %s: reading the start and end offsets of %s", group, topic)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: topic %s: %w", group, topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: topic %s: %w", group, topic, err)
	}
	line.Set("reset offsets of group %s: reading its committed offsets", group)
	old, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = old.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		old, err = nil, nil // a group yet to consume: its offsets are set before it starts, as Kafka's tool allows
	}
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: fetch its offsets: %w", group, err)
	}
	next := kadm.Offsets{}
	var clamped []string
	starts.Each(func(s kadm.ListedOffset) {
		if only != nil && !only[s.Partition] {
			return
		}
		end, _ := ends.Lookup(topic, s.Partition)
		at := target.offset
		switch {
		case target.earliest:
			at = s.Offset
		case target.latest:
			at = end.Offset
		case at < s.Offset || at > end.Offset:
			at = min(max(at, s.Offset), end.Offset)
			clamped = append(clamped, fmt.Sprintf("partition %d: %d is outside [%d, %d], using %d", s.Partition, target.offset, s.Offset, end.Offset, at))
		}
		next.Add(kadm.Offset{Topic: topic, Partition: s.Partition, At: at, LeaderEpoch: -1})
	})
	for p := range only {
		if _, ok := next.Lookup(topic, p); !ok {
			return usagef("group reset-offsets: topic %s has no partition %d", topic, p)
		}
	}
	line.Clear()
	for _, msg := range clamped {
		fmt.Fprintf(c.stderr, "streamhouse: %s\n", msg)
	}
	if !dryRun {
		if err := commitReset(ctx, adm, line, group, next); err != nil {
			return err
		}
	}
	line.Clear()
	return printReset(c.stdout, topic, old, next, dryRun)
}

// resetCommitChunk is how many partitions' offsets one OffsetCommit of reset-offsets carries: small
// enough for a progress line to move over thousands of partitions, large enough to cost few requests.
const resetCommitChunk = 500

// commitReset commits the new offsets in chunks, showing how far it is. Kafka commits each
// partition's offset on its own in any case, so chunks lose nothing a single request would give.
func commitReset(ctx context.Context, adm *kadm.Client, line *progress.Line, group string, next kadm.Offsets) error {
	all := next.Sorted()
	for i := 0; i < len(all); i += resetCommitChunk {
		line.Set("reset offsets of group %s: committed %d of %d partitions", group, i, len(all))
		chunk := kadm.Offsets{}
		for _, o := range all[i:min(i+resetCommitChunk, len(all))] {
			chunk.Add(o)
		}
		resp, err := adm.CommitOffsets(ctx, group, chunk)
		if err == nil {
			err = resp.Error()
		}
		if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) {
			err = fmt.Errorf("%w (a member joined meanwhile: stop the group's consumers first)", err)
		}
		if err != nil {
			return fmt.Errorf("reset offsets of group %s: %w", group, err)
		}
	}
	line.Set("reset offsets of group %s: committed %d of %d partitions", group, len(all), len(all))
	line.Flush()
	return nil
}

// checkNoMembers refuses a group with members: their commits would undo the reset, and the
// coordinator would refuse ours anyway.
func checkNoMembers(ctx context.Context, adm *kadm.Client, group string) error {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: %w", group, err)
	}
	d := described[group]
	if d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound) {
		return fmt.Errorf("reset offsets of group %s: %w", group, d.Err)
	}
	if len(d.Members) > 0 || (d.State != "Empty" && d.State != "Dead" && d.State != "") {
		return fmt.Errorf("group %s has %d active member(s) (state %s): stop its consumers before resetting its offsets", group, len(d.Members), d.State)
	}
	return nil
}

func printReset(w io.Writer, topic string, old kadm.OffsetResponses, next kadm.Offsets, dryRun bool) error {
	if dryRun {
		fmt.Fprintln(w, "dry run: nothing committed")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD\tNEW")
	for _, o := range next.Sorted() {
		prev := "-"
		if p, ok := old.Lookup(topic, o.Partition); ok {
			prev = fmt.Sprint(p.At)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", o.Topic, o.Partition, prev, o.At)
	}
	return tw.Flush()
}
