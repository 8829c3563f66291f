package main

import (
	"flag"
	"fmt"
	"strings"
)

// subcommand runs the subcommand of parent (topic, group, cluster) that args name, or prints the
// parent's usage.
func (c *cli) subcommand(parent string, cmds []command, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		width := 0
		for _, cmd := range cmds {
			width = max(width, len(cmd.name))
		}
		fmt.Fprintf(c.stdout, "Usage: streamhouse %s <subcommand> [flags] [arguments]\n\nSubcommands:\n", parent)
		for _, cmd := range cmds {
			fmt.Fprintf(c.stdout, "  %-*s %s\n", width+1, cmd.name, cmd.summary)
		}
		fmt.Fprintf(c.stdout, "\nRun 'streamhouse %s <subcommand> --help' for its flags.\n", parent)
		return flag.ErrHelp
	}
	var names []string
	for _, cmd := range cmds {
		if len(args) > 0 && cmd.name == args[0] {
			return cmd.run(c, args[1:])
		}
		names = append(names, cmd.name)
	}
	if len(args) == 0 {
		return usagef("%s: want a subcommand: %s (see 'streamhouse %s --help')", parent, strings.Join(names, ", "), parent)
	}
	return usagef("%s: unknown subcommand %q (see 'streamhouse %s --help')", parent, args[0], parent)
}
