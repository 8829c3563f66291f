package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// etcdAuth is how a command reaches a secured etcd: TLS (a CA, and a client certificate for etcd's
// --client-cert-auth) and a user of etcd's RBAC. Every command that talks to etcd takes the same
// flags, so that one agent.env serves them all.
type etcdAuth struct {
	caFile, certFile, keyFile    string
	user, password, passwordFile string
}

var etcdAuthFlagNames = []string{"etcd-cacert", "etcd-cert", "etcd-key", "etcd-user", "etcd-password", "etcd-password-file"}

func (fs *flagSet) etcdAuthFlags() *etcdAuth {
	a := &etcdAuth{}
	fs.StringVar(&a.caFile, "etcd-cacert", "", "PEM `file` of the CA certificates of the etcd servers; "+
		"any of --etcd-cacert, --etcd-cert and --etcd-key turns TLS to etcd on (default: the system's roots)")
	fs.StringVar(&a.certFile, "etcd-cert", "", "PEM `file` of the client certificate shown to etcd (its --client-cert-auth); "+
		"re-read when it changes")
	fs.StringVar(&a.keyFile, "etcd-key", "", "PEM `file` of the key of --etcd-cert")
	fs.StringVar(&a.user, "etcd-user", "", "etcd `user`, when etcd's authentication is on")
	fs.StringVar(&a.password, "etcd-password", "", "`password` of --etcd-user: give it in the environment or in "+
		"--etcd-password-file, as a command line is visible to every user of the host")
	fs.StringVar(&a.passwordFile, "etcd-password-file", "", "`file` holding the password of --etcd-user (a trailing newline is dropped)")
	fs.secret("etcd-password")
	fs.fromEnv(etcdAuthFlagNames...)
	return a
}

// apply puts TLS and credentials into cfg.
func (a *etcdAuth) apply(cfg *coord.Config, log hclog.Logger) error {
	if a.password != "" && a.passwordFile != "" {
		return usagef("give the etcd password in --etcd-password or in --etcd-password-file, not both")
	}
	pw := a.password
	if a.passwordFile != "" {
		b, err := os.ReadFile(a.passwordFile)
		if err != nil {
			return usagef("--etcd-password-file: %v", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if (a.user == "") != (pw == "") {
		return usagef("--etcd-user and its password go together")
	}
	cfg.Username, cfg.Password = a.user, pw
	tc := auth.ClientTLSConfig{CAFile: a.caFile, CertFile: a.certFile, KeyFile: a.keyFile, Logger: log}
	if !tc.Enabled() {
		return nil
	}
	t, err := auth.ClientTLS(tc)
	if err != nil {
		return usageError{fmt.Errorf("etcd TLS: %w", err)}
	}
	cfg.TLS = t
	return nil
}

// defaultEtcd is the --etcd of every command that reads or writes etcd: the endpoint of
// "streamhouse dev" on its default --etcd-addr, so that the tools work against it without flags.
const defaultEtcd = "http://" + defaultDevEtcdAddr

// etcdFlags are the etcd flags of the tools that read and write etcd directly (cluster, user,
// acl, quota): they work while no agent answers.
type etcdFlags struct {
	endpoints, prefix string
	auth              *etcdAuth
}

func (fs *flagSet) etcdFlags() *etcdFlags {
	return fs.etcdFlagsDefault(defaultEtcd, "etcd `endpoints`, comma-separated")
}

// optionalEtcdFlags are the etcd flags of a tool that reads etcd only when --etcd is given.
func (fs *flagSet) optionalEtcdFlags(usage string) *etcdFlags { return fs.etcdFlagsDefault("", usage) }

func (fs *flagSet) etcdFlagsDefault(endpoints, usage string) *etcdFlags {
	f := &etcdFlags{}
	fs.StringVar(&f.endpoints, "etcd", endpoints, usage)
	fs.StringVar(&f.prefix, "etcd-prefix", coord.DefaultPrefix, "`prefix` of StreamHouse's etcd keys")
	f.auth = fs.etcdAuthFlags()
	fs.fromEnv("etcd", "etcd-prefix") // the agent's variables, so that one agent.env serves both
	return f
}

// config is the coord configuration of the flags.
func (f *etcdFlags) config() (coord.Config, error) {
	endpoints := splitList(f.endpoints)
	if len(endpoints) == 0 {
		return coord.Config{}, usagef("--etcd: no endpoints")
	}
	cfg := coord.Config{Endpoints: endpoints, Prefix: f.prefix, DialTimeout: etcdDialTimeout}
	return cfg, f.auth.apply(&cfg, nil)
}

// withEtcd connects and runs fn under statusTimeout; an interrupt ends it.
func (c *cli) withEtcd(f *etcdFlags, fn func(ctx context.Context, cl *coord.Client) error) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	ctx, cancel := c.interruptible()
	defer cancel()
	cl, err := coord.Connect(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	defer cl.Close()
	octx, ocancel := context.WithTimeout(ctx, statusTimeout)
	defer ocancel()
	if err := fn(octx, cl); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	return nil
}
