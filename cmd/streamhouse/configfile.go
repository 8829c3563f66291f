package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// redacted stands for a secret's value in --print-config.
const redacted = "<redacted>"

// configFile is a command's --config and --print-config.
type configFile struct {
	path  string
	print bool
}

// configFile lets the command read its flags from a YAML file (--config; every flag is a key, as
// written on the command line without the dashes) and print the configuration it would run with
// (--print-config). Precedence: command line, then environment, then file, then defaults.
func (fs *flagSet) configFile() {
	fs.file = &configFile{}
	fs.StringVar(&fs.file.path, "config", "", "YAML `file` of flags: each key a flag name (flush-bytes: 4MiB); "+
		"the command line and the environment take precedence over it")
	fs.BoolVar(&fs.file.print, "print-config", false, "print the configuration the command would run with, as YAML "+
		"that --config reads, secrets redacted, and exit")
}

// secret marks flags whose values are never printed.
func (fs *flagSet) secret(names ...string) {
	if fs.secrets == nil {
		fs.secrets = map[string]bool{}
	}
	for _, n := range names {
		fs.secrets[n] = true
	}
}

// parseFile sets, from the config file, every flag that neither the command line nor the
// environment set. A key that names no flag is refused with its name.
func (fs *flagSet) parseFile() error {
	if fs.file == nil || fs.file.path == "" {
		return nil
	}
	path := fs.file.path
	data, err := os.ReadFile(path)
	if err != nil {
		return usagef("%s: --config: %v", fs.cmd, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return usagef("%s: %s: %v", fs.cmd, path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return usagef("%s: %s: want a mapping of flag names to values", fs.cmd, path)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if err := fs.setFromFile(path, k, v, set, seen); err != nil {
			return err
		}
	}
	return nil
}

func (fs *flagSet) setFromFile(path string, k, v *yaml.Node, set, seen map[string]bool) error {
	name := k.Value
	where := fmt.Sprintf("%s: %s:%d", fs.cmd, path, k.Line)
	switch {
	case name == "config" || name == "print-config":
		return usagef("%s: %q cannot be set in a config file", where, name)
	case fs.Lookup(name) == nil:
		return usagef("%s: unknown key %q (keys are the flags of 'streamhouse %s --help', without dashes)", where, name, fs.cmd)
	case seen[name]:
		return usagef("%s: key %q given twice", where, name)
	}
	seen[name] = true
	if set[name] {
		return nil // the command line or the environment said otherwise
	}
	val, ok, err := scalarValue(v)
	if err != nil {
		return usagef("%s: %s: %v", where, name, err)
	}
	if !ok {
		return nil // null: as if absent
	}
	if err := fs.Set(name, val); err != nil {
		shown := val
		if fs.secrets[name] {
			shown = redacted
		}
		return usagef("%s: invalid value %q for %s: %v", where, shown, name, err)
	}
	return nil
}

// scalarValue is a YAML value as a flag's string: scalars as written, a sequence of scalars joined
// with commas (etcd: [h1:2379, h2:2379]). ok is false for null.
func scalarValue(v *yaml.Node) (string, bool, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", false, nil
		}
		return v.Value, true, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(v.Content))
		for _, c := range v.Content {
			if c.Kind != yaml.ScalarNode {
				return "", false, errors.New("want a value or a list of values")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), true, nil
	case yaml.AliasNode:
		return scalarValue(v.Alias)
	}
	return "", false, errors.New("want a value or a list of values, not a mapping")
}

// printConfig writes every flag's effective value as YAML --config reads, secrets redacted, and
// returns flag.ErrHelp: the command stops there and exits 0.
func (fs *flagSet) printConfig(w io.Writer) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || f.Name == "print-config" {
			return
		}
		v := f.Value.String()
		if fs.secrets[f.Name] && v != "" {
			v = redacted
		}
		val := &yaml.Node{Kind: yaml.ScalarNode, Value: v}
		if v == "" {
			val.Style = yaml.DoubleQuotedStyle // a bare empty value would read back as null: the default
		}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: f.Name}, val)
	})
	fmt.Fprintf(w, "# effective configuration of 'streamhouse %s'\n", fs.cmd)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return flag.ErrHelp
}
