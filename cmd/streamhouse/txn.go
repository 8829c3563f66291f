package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

var txnCommands = []command{
	{"list", "list transactional ids with their state and producer id (ListTransactions)", (*cli).txnList},
	{"describe", "show transactions: state, producer, timeout, start time, partitions (DescribeTransactions)", (*cli).txnDescribe},
	{"producers", "show a topic's active producers per partition and their open transactions (DescribeProducers)", (*cli).txnProducers},
}

func (c *cli) txn(args []string) error { return c.subcommand("txn", txnCommands, args) }

// txnStates are the states ListTransactions filters by, as Kafka names them.
var txnStates = []string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

func (c *cli) txnList(args []string) error {
	fs := c.newFlagSet("txn list", "",
		"List the transactional ids every coordinator holds, with their state and producer id.")
	brokers := fs.brokersFlag()
	var states, pids []string
	fs.Var(listValue{&states}, "state", "only ids in this `state` (repeatable): "+strings.Join(txnStates, ", "))
	fs.Var(listValue{&pids}, "producer-id", "only ids of this producer `id` (repeatable)")
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	for _, s := range states {
		if !slices.Contains(txnStates, s) {
			return usagef("txn list: --state %q: want one of %s", s, strings.Join(txnStates, ", "))
		}
	}
	var ids []int64
	for _, p := range pids {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return usagef("txn list: --producer-id %q: want a number", p)
		}
		ids = append(ids, id)
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		listed, err := adm.ListTransactions(ctx, ids, states)
		if err != nil {
			return fmt.Errorf("list transactions: %w", err)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TRANSACTIONAL ID\tSTATE\tPRODUCER ID\tCOORDINATOR")
		for _, l := range listed.Sorted() {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", l.TxnID, l.State, l.ProducerID, l.Coordinator)
		}
		return tw.Flush()
	})
}

func (c *cli) txnDescribe(args []string) error {
	fs := c.newFlagSet("txn describe", "TRANSACTIONAL-ID...",
		"Show transactions as their coordinators hold them: state, producer id and epoch, timeout, when the\n"+
			"ongoing (or last) transaction started, and the partitions it added.")
	brokers := fs.brokersFlag()
	ids, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usagef("txn describe: want at least one transactional id (see 'streamhouse txn describe --help')")
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		described, err := adm.DescribeTransactions(ctx, ids...)
		if err != nil {
			return fmt.Errorf("describe transactions: %w", err)
		}
		var errs []error
		for i, id := range ids {
			if i > 0 {
				fmt.Fprintln(c.stdout)
			}
			d, ok := described[id]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("describe transaction %s: no answer", id))
			case d.Err != nil:
				errs = append(errs, fmt.Errorf("describe transaction %s: %w", id, d.Err))
			default:
				printTxn(c.stdout, d)
			}
		}
		return errors.Join(errs...)
	})
}

func printTxn(w io.Writer, d kadm.DescribedTransaction) {
	started := "-"
	if d.StartTimestamp > 0 {
		started = time.UnixMilli(d.StartTimestamp).UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "transactional id: %s\nstate: %s\nproducer id: %d\nproducer epoch: %d\ntimeout: %v\nstarted: %s\ncoordinator: %d\n",
		d.TxnID, d.State, d.ProducerID, d.ProducerEpoch, time.Duration(d.TimeoutMillis)*time.Millisecond, started, d.Coordinator)
	var parts []string
	for _, t := range d.Topics.Sorted() {
		ps := slices.Clone(t.Partitions)
		slices.Sort(ps)
		nums := make([]string, len(ps))
		for i, p := range ps {
			nums[i] = strconv.Itoa(int(p))
		}
		parts = append(parts, t.Topic+"["+strings.Join(nums, ",")+"]")
	}
	fmt.Fprintf(w, "partitions: %s\n", dash(strings.Join(parts, " ")))
}

func (c *cli) txnProducers(args []string) error {
	fs := c.newFlagSet("txn producers", "TOPIC",
		"Show the active producers of each partition of a topic, as its leader holds them: producer id and\n"+
			"epoch, last sequence, last write, and the first offset of the producer's open transaction (what\n"+
			"holds the partition's last stable offset back).")
	brokers := fs.brokersFlag()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	return c.withAdmin(*brokers, func(ctx context.Context, adm *kadm.Client) error {
		topic := pos[0]
		described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: nil})
		if err != nil {
			return fmt.Errorf("describe producers of %s: %w", topic, err)
		}
		t, ok := described[topic]
		if !ok || len(t.Partitions) == 0 {
			return fmt.Errorf("describe producers of %s: no such topic", topic)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tPRODUCER ID\tEPOCH\tLAST SEQUENCE\tLAST WRITE\tTXN START OFFSET")
		for _, p := range t.Partitions.Sorted() {
			if p.Err != nil {
				fmt.Fprintf(tw, "%d\t%s\t\t\t\t\n", p.Partition, p.Err)
				continue
			}
			for _, pr := range p.ActiveProducers.Sorted() {
				last, start := "-", "-"
				if pr.LastTimestamp >= 0 {
					last = time.UnixMilli(pr.LastTimestamp).UTC().Format(time.RFC3339)
				}
				if pr.CurrentTxnStartOffset >= 0 {
					start = strconv.FormatInt(pr.CurrentTxnStartOffset, 10)
				}
				fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", p.Partition, pr.ProducerID, pr.ProducerEpoch, pr.LastSequence, last, start)
			}
		}
		return tw.Flush()
	})
}
