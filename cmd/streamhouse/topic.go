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
)

var topicCommands = []command{
	{"create", "create a topic", (*cli).topicCreate},
	{"list", "list topics", (*cli).topicList},
	{"describe", "show a topic's partitions, leaders and configs", (*cli).topicDescribe},
	{"delete", "delete a topic", (*cli).topicDelete},
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
	fs := c.newFlagSet("topic describe", "NAME", "Show a topic's partitions (leader, its address and rack, leader epoch) and configs.")
	brokers := fs.brokersFlag()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		name := pos[0]
		md, err := adm.Metadata(ctx, name)
		if err != nil {
			return fmt.Errorf("describe topic %s: %w", name, err)
		}
		td := md.Topics[name]
		if td.Err != nil {
			return fmt.Errorf("describe topic %s: %w", name, td.Err)
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, name)
		if err == nil && len(rcs) == 1 {
			err = kafkaErr(rcs[0].Err, rcs[0].ErrMessage)
		}
		if err != nil {
			return fmt.Errorf("describe configs of topic %s: %w", name, err)
		}
		return printTopic(c.stdout, md.Brokers, td, rcs[0].Configs)
	})
}

func printTopic(w io.Writer, brokers kadm.BrokerDetails, td kadm.TopicDetail, configs []kadm.Config) error {
	fmt.Fprintf(w, "topic: %s\nid: %s\npartitions: %d\n\n", td.Topic, hex.EncodeToString(td.ID[:]), len(td.Partitions))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tADDRESS\tRACK\tLEADER EPOCH\tERROR")
	for _, p := range td.Partitions.Sorted() {
		leader, addr, rack := "-", "-", "-"
		if p.Leader >= 0 {
			leader = fmt.Sprint(p.Leader)
		}
		if i := slices.IndexFunc(brokers, func(b kadm.BrokerDetail) bool { return b.NodeID == p.Leader }); i >= 0 {
			addr = fmt.Sprintf("%s:%d", brokers[i].Host, brokers[i].Port)
			if brokers[i].Rack != nil && *brokers[i].Rack != "" {
				rack = *brokers[i].Rack
			}
		}
		perr := "-"
		if p.Err != nil {
			perr = p.Err.Error()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", p.Partition, leader, addr, rack, p.LeaderEpoch, perr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
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
