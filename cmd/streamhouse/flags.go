package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Exit codes.
const (
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // bad flags, values or arguments
)

// envPrefix prefixes the environment variable of a flag: --flush-bytes is STREAMHOUSE_FLUSH_BYTES.
const envPrefix = "STREAMHOUSE_"

// usageError marks an error as the caller's: it exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exit prints err as one line and maps it to an exit code. flag.ErrHelp means usage was printed on
// request.
func (c *cli) exit(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(c.stderr, "streamhouse: %s\n", oneLine(err.Error()))
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitFailure
}

// oneLine folds a multi-line message (some libraries return them) onto one line.
func oneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return l == "" }), "; ")
}

// dashes writes the flag package's "-name" as "--name", the way the documentation writes flags.
var dashes = strings.NewReplacer("for flag -", "for --", "not defined: -", "not defined: --", "needs an argument: -", "needs an argument: --")

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// flagSet is a flag.FlagSet that also reads STREAMHOUSE_<FLAG> variables, takes positional arguments
// between flags (topic create NAME --partitions 3), knows its required flags and prints its usage with
// "--" flags, as the documentation writes them.
type flagSet struct {
	*flag.FlagSet
	c        *cli
	cmd      string          // "agent", "topic create"
	synopsis string          // positional arguments, e.g. "NAME"
	summary  string          // one paragraph for --help
	env      map[string]bool // flags read from the environment; nil with envAll
	envAll   bool
	required []string
	secrets  map[string]bool // flags whose values --print-config and --help never show
	file     *configFile     // --config and --print-config, when the command takes them
}

func (c *cli) newFlagSet(cmd, synopsis, summary string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(cmd, flag.ContinueOnError), c: c, cmd: cmd, synopsis: synopsis, summary: summary}
	fs.SetOutput(io.Discard) // errors are returned and printed as one line; usage goes to stdout on --help
	return fs
}

// fromEnv makes the named flags (all of them when none are named) readable from STREAMHOUSE_<FLAG>.
func (fs *flagSet) fromEnv(names ...string) {
	if len(names) == 0 {
		fs.envAll = true
		return
	}
	if fs.env == nil {
		fs.env = map[string]bool{}
	}
	for _, n := range names {
		fs.env[n] = true
	}
}

// require marks flags that must be given, on the command line or in the environment.
func (fs *flagSet) require(names ...string) { fs.required = append(fs.required, names...) }

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args and the environment and returns the positional arguments. With --help it prints the
// usage to stdout and returns flag.ErrHelp.
func (fs *flagSet) parse(args []string) ([]string, error) {
	pos, err := fs.parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.usage(fs.c.stdout)
		return nil, err
	}
	if err != nil {
		return nil, usagef("%s: %s (see 'streamhouse %s --help')", fs.cmd, dashes.Replace(err.Error()), fs.cmd)
	}
	if err := fs.parseEnv(); err != nil {
		return nil, err
	}
	if err := fs.parseFile(); err != nil {
		return nil, err
	}
	if fs.file != nil && fs.file.print {
		return nil, fs.printConfig(fs.c.stdout)
	}
	for _, name := range fs.required {
		if fs.Lookup(name).Value.String() == "" {
			return nil, usagef("%s: --%s is required%s", fs.cmd, name, fs.envHint(name))
		}
	}
	return pos, nil
}

// parseArgs lets flags and positional arguments mix, as in "topic create t --partitions 3"; after "--"
// everything is positional.
func (fs *flagSet) parseArgs(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.FlagSet.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// parseEnv sets every env-enabled flag not given on the command line from its variable. An empty
// variable counts as unset, so that an EnvironmentFile can list every variable.
func (fs *flagSet) parseEnv() error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] || !fs.envEnabled(f.Name) {
			return
		}
		v, ok := fs.c.lookupEnv(envName(f.Name))
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usagef("%s: invalid value %q for %s: %v", fs.cmd, v, envName(f.Name), serr)
		}
	})
	return err
}

func (fs *flagSet) envEnabled(name string) bool { return fs.envAll || fs.env[name] }

func (fs *flagSet) envHint(name string) string {
	if fs.envEnabled(name) {
		return " (or " + envName(name) + ")"
	}
	return ""
}

// parseN is parse that also checks the number of positional arguments.
func (fs *flagSet) parseN(args []string, n int) ([]string, error) {
	pos, err := fs.parse(args)
	if err != nil {
		return nil, err
	}
	return pos, fs.args(pos, n)
}

// args checks the number of positional arguments against the synopsis.
func (fs *flagSet) args(pos []string, want int) error {
	if len(pos) != want {
		return usagef("%s: want %d argument(s) (%s), got %d (see 'streamhouse %s --help')",
			fs.cmd, want, fs.synopsis, len(pos), fs.cmd)
	}
	return nil
}

func (fs *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace("streamhouse "+fs.cmd+" [flags] "+fs.synopsis), fs.summary)
	header := false
	fs.VisitAll(func(f *flag.Flag) {
		if !header {
			fmt.Fprint(w, "\nFlags:\n")
			header = true
		}
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			typ = " " + typ
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s", f.Name, typ, usage)
		// A zero default goes without saying, and some usages explain their default in words.
		if !slices.Contains([]string{"", "false", "0", "0s"}, f.DefValue) && !strings.Contains(usage, "default") && !fs.secrets[f.Name] {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		if fs.envEnabled(f.Name) {
			fmt.Fprintf(w, " [$%s]", envName(f.Name))
		}
		fmt.Fprintln(w)
	})
}
