package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

var quotaCommands = []command{
	{"set", "set a user's or client id's produce and fetch byte rates", (*cli).quotaSet},
	{"list", "list the client quotas", (*cli).quotaList},
	{"delete", "delete quota values of an entity", (*cli).quotaDelete},
}

func (c *cli) quota(args []string) error { return c.subcommand("quota", quotaCommands, args) }

// optString is a string flag that knows whether it was given (an empty client id is one).
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string { return o.v }
func (o *optString) Set(s string) error {
	o.v, o.set = s, true
	return nil
}

// entityFlags name a quota entity as kafka-configs does with --entity-type users / clients.
type entityFlags struct {
	user, client               optString
	userDefault, clientDefault bool
}

func (fs *flagSet) entityFlags() *entityFlags {
	e := &entityFlags{}
	fs.Var(&e.user, "user", "the `user` (principal name) the quota applies to")
	fs.BoolVar(&e.userDefault, "user-default", false, "the default of every user without a quota of its own")
	fs.Var(&e.client, "client-id", "the `client id` the quota applies to (with --user: that user's client)")
	fs.BoolVar(&e.clientDefault, "client-id-default", false, "the default of every client id without a quota of its own")
	return e
}

func (e *entityFlags) entity() (coord.QuotaEntity, error) {
	var q coord.QuotaEntity
	switch {
	case e.user.set && e.userDefault, e.client.set && e.clientDefault:
		return q, usagef("give a name or the default of an entity type, not both")
	case e.user.set:
		q.User = coord.Named(e.user.v)
	case e.userDefault:
		q.User = coord.DefaultEntity
	}
	switch {
	case e.client.set:
		q.ClientID = coord.Named(e.client.v)
	case e.clientDefault:
		q.ClientID = coord.DefaultEntity
	}
	if !q.User.Set && !q.ClientID.Set {
		return q, usagef("name the entity: --user, --user-default, --client-id or --client-id-default")
	}
	return q, nil
}

func (c *cli) quotaSet(args []string) error {
	fs := c.newFlagSet("quota set", "", "Set byte-rate quotas (bytes per second) of a user, a client id, a user's client id, or\n"+
		"their defaults. Clients over their quota are answered with a throttle time, as Kafka does.")
	e := fs.entityFlags()
	var produce, fetch int64
	fs.Var(sizeValue{&produce}, "producer-byte-rate", "produce `bytes` per second (a size: 1MiB)")
	fs.Var(sizeValue{&fetch}, "consumer-byte-rate", "fetch `bytes` per second (a size: 1MiB)")
	etcd := fs.etcdFlags()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	ent, err := e.entity()
	if err != nil {
		return err
	}
	set := map[string]float64{}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, r := range []struct {
		flag, key string
		v         int64
	}{{"producer-byte-rate", auth.ProducerByteRate, produce}, {"consumer-byte-rate", auth.ConsumerByteRate, fetch}} {
		if !given[r.flag] {
			continue
		}
		if err := auth.ValidateQuota(r.key, float64(r.v)); err != nil {
			return usageError{err}
		}
		set[r.key] = float64(r.v)
	}
	if len(set) == 0 {
		return usagef("quota set: give --producer-byte-rate or --consumer-byte-rate")
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		if err := cl.AlterQuota(ctx, ent, set, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "quota of %s set\n", ent)
		return nil
	})
}

func (c *cli) quotaDelete(args []string) error {
	fs := c.newFlagSet("quota delete", "", "Delete an entity's quota values: those named, or all of them.")
	e := fs.entityFlags()
	produce := fs.Bool("producer-byte-rate", false, "delete the produce rate only")
	fetch := fs.Bool("consumer-byte-rate", false, "delete the fetch rate only")
	etcd := fs.etcdFlags()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	ent, err := e.entity()
	if err != nil {
		return err
	}
	var remove []string
	if *produce || !*fetch {
		remove = append(remove, auth.ProducerByteRate)
	}
	if *fetch || !*produce {
		remove = append(remove, auth.ConsumerByteRate)
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		if err := cl.AlterQuota(ctx, ent, nil, remove); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "quota of %s: %v deleted\n", ent, remove)
		return nil
	})
}

func (c *cli) quotaList(args []string) error {
	fs := c.newFlagSet("quota list", "", "List the client quotas (bytes per second).")
	etcd := fs.etcdFlags()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		qs, err := cl.Quotas(ctx)
		if err != nil {
			return err
		}
		slices.SortFunc(qs, func(a, b coord.ClientQuota) int {
			return strings.Compare(a.Entity.String(), b.Entity.String())
		})
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENTITY\tPRODUCER_BYTE_RATE\tCONSUMER_BYTE_RATE")
		for _, q := range qs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", q.Entity, rate(q.Values, auth.ProducerByteRate), rate(q.Values, auth.ConsumerByteRate))
		}
		return tw.Flush()
	})
}

func rate(values map[string]float64, key string) string {
	v, ok := values[key]
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
