package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

var topicCommands = []command{
	{"create", "create a topic", (*cli).topicCreate},
	{"list", "list topics", (*cli).topicList},
	{"describe", "show a topic's partitions, leaders and configs", (*cli).topicDescribe},
	{"delete", "delete a topic", (*cli).topicDelete},
	{"delete-records", "move a partition's log start forward, deleting the records before it", (*cli).topicDeleteRecords},
}

func (c *cli) topic(args []string) error { return c.subcommand("topic", topicCommands, args) }

// withAdmin connects and runs fn with an admin client under a deadline.
func (c *cli) withAdmin(brokers string, fn func(ctx context.Context, adm *kadm.Client) error) error {
	ctx, cancel := c.interruptible()
	defer cancel()
	cl, err := kafkaClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer cl.Close()
	actx, acancel := context.WithTimeout(ctx, adminTimeout)
	defer acancel()
	return fn(actx, kadm.NewClient(cl))
}

func (c *cli) topicCreate(args []string) error {
	fs := c.newFlagSet("topic create", "NAME", "Create a topic.")
	partitions := int32(-1)
	fs.Var(int32Value{&partitions}, "partitions", "number of `partitions`; -1: the cluster's default")
	configs := map[string]string{}
	fs.Var(configsValue{&configs}, "config", "topic config `key=value` (repeatable), e.g. --config max.message.bytes=2097152")
	brokers := fs.brokersFlag()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	if partitions == 0 || partitions < -1 {
		return usagef("topic create: --partitions must be positive (or -1), got %d", partitions)
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		cfgs := make(map[string]*string, len(configs))
		for k, v := range configs {
			cfgs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, partitions, -1, cfgs, pos[0])
		if err != nil {
			return fmt.Errorf("create topic %s: %w", pos[0], kafkaErr(err, resp.ErrMessage))
		}
		fmt.Fprintf(c.stdout, "created topic %s with %d partitions\n", resp.Topic, resp.NumPartitions)
		return nil
	})
}

func (c *cli) topicList(args []string) error {
	fs := c.newFlagSet("topic list", "", "List the topics, with their partition counts.")
	brokers := fs.brokersFlag()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITIONS")
		for _, name := range topics.Names() {
			fmt.Fprintf(tw, "%s\t%d\n", name, len(topics[name].Partitions))
		}
		return tw.Flush()
	})
}

func (c *cli) topicDescribe(args []string) error {
	fs := c.newFlagSet("topic describe", "NAME", "Show a topic's partitions (leader, its address and rack, leader epoch, log start offset and\n"+
		"high watermark) and configs; with --etcd, also what each partition holds in storage (bytes, segments,\n"+
		"uncompacted entries, objects) and, for a compacted topic, the cleaner's progress (the offset below which\n"+
		"it is cleaned, the tombstones left).")
	brokers := fs.brokersFlag()
	etcd := fs.optionalEtcdFlags("etcd `endpoints`, comma-separated: read each partition's storage from StreamHouse's index too")
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	var d topicDescription
	err = c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		d, err = describeTopic(ctx, adm, name)
		return err
	})
	if err != nil {
		return err
	}
	if etcd.endpoints != "" {
		var st coord.ClusterStatus
		err := c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
			var err error
			st, err = cl.Status(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("describe topic %s: reading its storage from etcd: %w", name, err)
		}
		d.storage = map[int32]coord.PartitionStatus{}
		for _, p := range st.Partitions {
			if p.Topic == name {
				d.storage[p.Partition] = p
			}
		}
	}
	return d.print(c.stdout)
}

// topicDescription is what topic describe prints: the Kafka view of a topic and, read from etcd when
// asked, what its partitions hold in storage.
type topicDescription struct {
	brokers      kadm.BrokerDetails
	td           kadm.TopicDetail
	starts, ends kadm.ListedOffsets
	configs      []kadm.Config
	storage      map[int32]coord.PartitionStatus // nil: not asked
}

func describeTopic(ctx context.Context, adm *kadm.Client, name string) (topicDescription, error) {
	md, err := adm.Metadata(ctx, name)
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %s: %w", name, err)
	}
	d := topicDescription{brokers: md.Brokers, td: md.Topics[name]}
	if d.td.Err != nil {
		return d, fmt.Errorf("describe topic %s: %w", name, d.td.Err)
	}
	if d.starts, err = adm.ListStartOffsets(ctx, name); err == nil {
		d.ends, err = adm.ListEndOffsets(ctx, name)
	}
	if err != nil {
		return d, fmt.Errorf("list offsets of topic %s: %w", name, err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err == nil && len(rcs) == 1 {
		err = kafkaErr(rcs[0].Err, rcs[0].ErrMessage)
	}
	if err != nil {
		return d, fmt.Errorf("describe configs of topic %s: %w", name, err)
	}
	d.configs = rcs[0].Configs
	return d, nil
}

// listedOffset is a partition's listed offset, or "-" when listing it failed.
func listedOffset(l kadm.ListedOffsets, topic string, p int32) string {
	o, ok := l.Lookup(topic, p)
	if !ok || o.Err != nil {
		return "-"
	}
	return fmt.Sprint(o.Offset)
}

// compacted reports a topic whose cleanup.policy includes compact: its cleaner's progress is shown.
func (d topicDescription) compacted() bool {
	for _, c := range d.configs {
		if c.Key == "cleanup.policy" && c.Value != nil && strings.Contains(*c.Value, "compact") {
			return true
		}
	}
	return false
}

func (d topicDescription) print(w io.Writer) error {
	td := d.td
	fmt.Fprintf(w, "topic: %s\nid: %s\npartitions: %d\n\n", td.Topic, hex.EncodeToString(td.ID[:]), len(td.Partitions))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "PARTITION\tLEADER\tADDRESS\tRACK\tLEADER EPOCH\tLOG START\tHIGH WATERMARK\tERROR"
	compacted := d.compacted()
	if d.storage != nil {
		header += "\tBYTES\tSEGMENTS\tTAIL\tOBJECTS"
		if compacted {
			header += "\tCLEANED TO\tTOMBSTONES"
		}
	}
	fmt.Fprintln(tw, header)
	for _, p := range td.Partitions.Sorted() {
		leader, addr, rack := "-", "-", "-"
		if p.Leader >= 0 {
			leader = fmt.Sprint(p.Leader)
		}
		if i := slices.IndexFunc(d.brokers, func(b kadm.BrokerDetail) bool { return b.NodeID == p.Leader }); i >= 0 {
			addr = fmt.Sprintf("%s:%d", d.brokers[i].Host, d.brokers[i].Port)
			if d.brokers[i].Rack != nil && *d.brokers[i].Rack != "" {
				rack = *d.brokers[i].Rack
			}
		}
		perr := "-"
		if p.Err != nil {
			perr = p.Err.Error()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s", p.Partition, leader, addr, rack, p.LeaderEpoch,
			listedOffset(d.starts, td.Topic, p.Partition), listedOffset(d.ends, td.Topic, p.Partition), perr)
		if d.storage != nil {
			if st, ok := d.storage[p.Partition]; ok {
				fmt.Fprintf(tw, "\t%d\t%d\t%d\t%d", st.Bytes, st.Segments, st.Tail, st.Objects)
				if compacted {
					fmt.Fprintf(tw, "\t%d\t%d", st.CleanTo, st.Tombstones)
				}
			} else {
				fmt.Fprint(tw, "\t-\t-\t-\t-")
				if compacted {
					fmt.Fprint(tw, "\t-\t-")
				}
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	configs := d.configs
	fmt.Fprint(w, "\nconfigs:\n")
	slices.SortFunc(configs, func(a, b kadm.Config) int { return strings.Compare(a.Key, b.Key) })
	for _, cfg := range configs {
		v := "(null)"
		switch {
		case cfg.Sensitive:
			v = "(sensitive)"
		case cfg.Value != nil:
			v = *cfg.Value
		}
		source := ""
		if cfg.Source != kmsg.ConfigSourceDynamicTopicConfig {
			source = "  (" + strings.ToLower(strings.TrimSuffix(cfg.Source.String(), "_CONFIG")) + ")"
		}
		fmt.Fprintf(w, "  %s=%s%s\n", cfg.Key, v, source)
	}
	return nil
}

func (c *cli) topicDelete(args []string) error {
	fs := c.newFlagSet("topic delete", "NAME", "Delete a topic and its records.")
	brokers := fs.brokersFlag()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		resp, err := adm.DeleteTopic(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("delete topic %s: %w", pos[0], kafkaErr(err, resp.ErrMessage))
		}
		fmt.Fprintf(c.stdout, "deleted topic %s\n", pos[0])
		return nil
	})
}

func (c *cli) topicDeleteRecords(args []string) error {
	fs := c.newFlagSet("topic delete-records", "NAME", "Delete a partition's records before an offset (Kafka's DeleteRecords): its log start\n"+
		"moves there, consumers can no longer read them, and their storage is freed by retention's clean-up.")
	partition := int32(-1)
	fs.Var(int32Value{&partition}, "partition", "the `partition` (required)")
	before := fs.Int64("before", -2, "the new log start `offset`: records below it are deleted; -1: the high watermark (all)")
	brokers := fs.brokersFlag()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	if partition < 0 {
		return usagef("topic delete-records: --partition is required")
	}
	if *before < -1 {
		return usagef("topic delete-records: --before must be an offset or -1")
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		name := pos[0]
		o := kadm.Offsets{}
		o.Add(kadm.Offset{Topic: name, Partition: partition, At: *before})
		resp, err := adm.DeleteRecords(ctx, o)
		if err != nil {
			return fmt.Errorf("delete records of %s/%d: %w", name, partition, err)
		}
		r, ok := resp.Lookup(name, partition)
		if !ok {
			return fmt.Errorf("delete records of %s/%d: no answer for the partition", name, partition)
		}
		if r.Err != nil {
			return fmt.Errorf("delete records of %s/%d: %w", name, partition, r.Err)
		}
		fmt.Fprintf(c.stdout, "%s/%d: log start offset %d\n", name, partition, r.LowWatermark)
		return nil
	})
}
