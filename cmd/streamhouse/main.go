package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamhouse/streamhouse/internal/progress"
)

// cli is one invocation's environment: its streams, its environment variables and its stop signals.
// Tests build their own to run commands in-process.
type cli struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(string) (string, bool)
	// signals delivers SIGINT and SIGTERM. dev and agent shut down gracefully on the first and stop at
	// once on the second; the client commands stop on the first.
	signals <-chan os.Signal
	// stderrTerminal turns on the progress lines of long work (produce, group reset-offsets): only a
	// person at a terminal wants them, not a log or a pipe.
	stderrTerminal bool
}

// progress is a status line on stderr, drawn only when stderr is a terminal.
func (c *cli) progress() *progress.Line { return progress.NewWriter(c.stderr, c.stderrTerminal) }

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(c *cli, args []string) error
}

var commands = []command{
	{"dev", "run etcd, an S3 endpoint and agents in one process, for development", (*cli).dev},
	{"agent", "run a StreamHouse agent against an etcd cluster and an S3 bucket", (*cli).agent},
	{"topic", "create, list, describe and delete topics", (*cli).topic},
	{"group", "list and describe consumer groups, reset their offsets", (*cli).group},
	{"txn", "list and describe transactions, and the producers of a topic's partitions", (*cli).txn},
	{"cluster", "show agents, partition leaders, epochs and next offsets, from etcd", (*cli).cluster},
	{"user", "add, delete and list SASL users (SCRAM credentials in etcd)", (*cli).user},
	{"acl", "add, list and remove ACL bindings (in etcd)", (*cli).acl},
	{"quota", "set, list and delete client byte-rate quotas (in etcd)", (*cli).quota},
	{"produce", "write stdin to a topic, one record per line", (*cli).produce},
	{"consume", "print a topic's records, one per line", (*cli).consume},
	{"version", "print the version", (*cli).version},
}

func main() {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv, signals: sig,
		stderrTerminal: progress.New(os.Stderr).On()}
	os.Exit(c.run(os.Args[1:]))
}

// run dispatches to a subcommand and turns its error into an exit code.
func (c *cli) run(args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	name := args[0]
	if isHelp(name) || name == "help" {
		c.usage(c.stdout)
		return 0
	}
	for _, cmd := range commands {
		if cmd.name == name {
			return c.exit(cmd.run(c, args[1:]))
		}
	}
	return c.exit(usagef("unknown command %q (see 'streamhouse --help')", name))
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, "streamhouse: a Kafka-compatible streaming log; record data in S3, coordination in etcd\n\n")
	fmt.Fprint(w, "Usage: streamhouse <command> [flags] [arguments]\n\nCommands:\n")
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprint(w, "\nRun 'streamhouse <command> --help' for a command's flags.\n")
}
