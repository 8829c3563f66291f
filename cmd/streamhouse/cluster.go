package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// Limits of "cluster status": it reads etcd directly, so that it works while no agent answers, and an
// unreachable etcd must be an error within seconds, not a hang.
const (
	etcdDialTimeout = 3 * time.Second
	statusTimeout   = 30 * time.Second // the whole read; thousands of partitions take well under a second
)

var clusterCommands = []command{
	{"status", "show the agents, and each partition's leader, epoch and next offset", (*cli).clusterStatus},
}

func (c *cli) cluster(args []string) error { return c.subcommand("cluster", clusterCommands, args) }

func (c *cli) clusterStatus(args []string) error {
	fs := c.newFlagSet("cluster status", "", "Show the registered agents (zone, group, address, lease time left, partitions led) and every\n"+
		"partition's leader, epoch and next offset, read from etcd at one revision. Works while no agent runs.")
	etcd := fs.etcdFlags()
	asJSON := fs.Bool("json", false, `print {"agents":[...],"partitions":[...]} instead of tables`)
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	var st coord.ClusterStatus
	err := c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		var err error
		st, err = cl.Status(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return printStatus(c.stdout, st)
}

// printStatus writes two tables, each aligned on its own: agents, then partitions ("-" where a
// partition has no leader).
func printStatus(w io.Writer, st coord.ClusterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAZ\tGROUP\tADDR\tTTL\tPARTITIONS")
	for _, a := range st.Agents {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%ds\t%d\n", a.ID, orDash(a.AZ), orDash(a.Group), a.Addr, a.TTLSeconds, a.PartitionsLed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tEPOCH\tLOG-START\tNEXT-OFFSET\tBYTES\tSEGMENTS\tTAIL\tOBJECTS")
	for _, p := range st.Partitions {
		leader := "-"
		if p.Leader != nil {
			leader = *p.Leader
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Topic, p.Partition, leader, p.Epoch,
			p.LogStart, p.NextOffset, p.Bytes, p.Segments, p.Tail, p.Objects)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
