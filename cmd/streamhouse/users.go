package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

var userCommands = []command{
	{"add", "add a user or set its password (SCRAM credentials, salted and hashed, in etcd)", (*cli).userAdd},
	{"delete", "delete a user's credentials", (*cli).userDelete},
	{"list", "list the users and their SCRAM mechanisms", (*cli).userList},
}

func (c *cli) user(args []string) error { return c.subcommand("user", userCommands, args) }

func (c *cli) userAdd(args []string) error {
	fs := c.newFlagSet("user add", "NAME", "Add a user, or set its password, for SASL SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN: etcd keeps\n"+
		"a salted SCRAM credential per mechanism, never the password. The password comes from --password-stdin\n"+
		"(its first line), --password, or a prompt on the terminal.")
	mechs := fs.String("mechanism", strings.Join(coord.ScramMechanisms, ","), "SCRAM `mechanisms`, comma-separated")
	iterations := auth.DefaultScramIterations
	fs.Var(atLeastValue{&iterations, auth.MinScramIterations}, "iterations",
		fmt.Sprintf("PBKDF2 `iterations` (%d to %d; each login costs the agent as many hashes)", auth.MinScramIterations, auth.MaxScramIterations))
	pwFlag := fs.String("password", "", "the `password` (visible to every user of the host: prefer --password-stdin)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	fs.secret("password")
	etcd := fs.etcdFlags()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	ms, err := scramMechanisms(*mechs)
	if err != nil {
		return err
	}
	pw, err := c.readPassword(*pwFlag, *fromStdin)
	if err != nil {
		return err
	}
	creds := make(map[string]coord.ScramCredential, len(ms))
	for _, m := range ms {
		if creds[m], err = auth.NewScramCredential(m, pw, iterations); err != nil {
			return usageError{err}
		}
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		for _, m := range ms {
			if err := cl.PutScramCredential(ctx, pos[0], m, creds[m]); err != nil {
				return err
			}
		}
		fmt.Fprintf(c.stdout, "user %s: credentials of %s set\n", pos[0], strings.Join(ms, ", "))
		return nil
	})
}

func scramMechanisms(s string) ([]string, error) {
	var out []string
	for _, m := range splitList(s) {
		m = strings.ToUpper(m)
		if m != coord.ScramSHA256 && m != coord.ScramSHA512 {
			return nil, usagef("--mechanism: %q: want %s", m, strings.Join(coord.ScramMechanisms, " or "))
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, usagef("--mechanism: none given")
	}
	return out, nil
}

// readPassword takes the password from the flag, stdin, or a prompt on the terminal (asked twice).
func (c *cli) readPassword(flagValue string, fromStdin bool) (string, error) {
	switch {
	case flagValue != "" && fromStdin:
		return "", usagef("give --password or --password-stdin, not both")
	case flagValue != "":
		return flagValue, nil
	case fromStdin:
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			return "", usagef("--password-stdin: stdin holds no password")
		}
		return line, nil
	}
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usagef("no terminal to ask for the password on: give --password-stdin")
	}
	var pws [2]string
	for i, prompt := range []string{"Password: ", "Again: "} {
		fmt.Fprint(c.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		pws[i] = string(b)
	}
	if pws[0] != pws[1] {
		return "", usagef("the passwords differ")
	}
	return pws[0], nil
}

func (c *cli) userDelete(args []string) error {
	fs := c.newFlagSet("user delete", "NAME", "Delete a user's SCRAM credentials: of every mechanism, or of --mechanism only.\n"+
		"Connections it has open stay open until they re-authenticate or close.")
	mech := fs.String("mechanism", "", "delete only this SCRAM `mechanism`'s credential")
	etcd := fs.etcdFlags()
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	m := strings.ToUpper(*mech)
	if m != "" {
		if _, err := scramMechanisms(m); err != nil {
			return err
		}
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		n, err := cl.DeleteScramCredential(ctx, pos[0], m)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user %s: no such credentials", pos[0])
		}
		fmt.Fprintf(c.stdout, "user %s: %d credential(s) deleted\n", pos[0], n)
		return nil
	})
}

func (c *cli) userList(args []string) error {
	fs := c.newFlagSet("user list", "", "List the users with SCRAM credentials, their mechanisms and iterations.")
	etcd := fs.etcdFlags()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		creds, err := cl.ScramCredentials(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tMECHANISM\tITERATIONS")
		for _, uc := range creds {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", uc.User, uc.Mechanism, uc.Iterations)
		}
		return tw.Flush()
	})
}
