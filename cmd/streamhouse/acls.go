package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

var aclCommands = []command{
	{"add", "add ACL bindings (Kafka's kafka-acls --add)", (*cli).aclAdd},
	{"list", "list ACL bindings", (*cli).aclList},
	{"remove", "remove the ACL bindings of resources (Kafka's kafka-acls --remove)", (*cli).aclRemove},
}

func (c *cli) acl(args []string) error { return c.subcommand("acl", aclCommands, args) }

// listValue is a repeatable string flag; commas do not split it (principals may hold them).
type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v listValue) Set(s string) error {
	*v.p = append(*v.p, s)
	return nil
}

// aclFlags are kafka-acls's flags, as far as StreamHouse has the resources.
type aclFlags struct {
	allowPrincipals, denyPrincipals []string
	allowHosts, denyHosts           []string
	operations                      []string
	topics, groups, txnIDs          []string
	cluster                         bool
	patternType                     string
}

func (fs *flagSet) aclFlags(defaultPattern string) *aclFlags {
	f := &aclFlags{patternType: defaultPattern}
	fs.Var(listValue{&f.allowPrincipals}, "allow-principal", "`principal` the bindings allow, such as User:alice or User:* (repeatable)")
	fs.Var(listValue{&f.denyPrincipals}, "deny-principal", "`principal` the bindings deny (repeatable)")
	fs.Var(listValue{&f.allowHosts}, "allow-host", "IP `address` the allowing bindings apply to (repeatable; default *: any)")
	fs.Var(listValue{&f.denyHosts}, "deny-host", "IP `address` the denying bindings apply to (repeatable; default *: any)")
	fs.Var(listValue{&f.operations}, "operation", "`operation`: Read, Write, Create, Delete, Alter, Describe, ClusterAction, "+
		"DescribeConfigs, AlterConfigs, IdempotentWrite, All (repeatable)")
	fs.Var(listValue{&f.topics}, "topic", "`topic` (repeatable; * for every topic)")
	fs.Var(listValue{&f.groups}, "group", "consumer `group` (repeatable; * for every group)")
	fs.Var(listValue{&f.txnIDs}, "transactional-id", "transactional `id` (repeatable)")
	fs.BoolVar(&f.cluster, "cluster", false, "the cluster resource")
	fs.StringVar(&f.patternType, "resource-pattern-type", defaultPattern, "how the resource names match: `type` "+
		"literal or prefixed (list and remove also take any and match)")
	return f
}

type resource struct {
	typ  auth.ResourceType
	name string
}

func (f *aclFlags) resources() []resource {
	var out []resource
	for _, l := range []struct {
		typ   auth.ResourceType
		names []string
	}{{auth.ResourceTopic, f.topics}, {auth.ResourceGroup, f.groups}, {auth.ResourceTransactionalID, f.txnIDs}} {
		for _, n := range l.names {
			out = append(out, resource{l.typ, n})
		}
	}
	if f.cluster {
		out = append(out, resource{auth.ResourceCluster, auth.ClusterName})
	}
	return out
}

func (f *aclFlags) ops(def auth.Operation) ([]auth.Operation, error) {
	if len(f.operations) == 0 {
		return []auth.Operation{def}, nil
	}
	var out []auth.Operation
	for _, s := range f.operations {
		op, err := auth.ParseOperation(s)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, op)
	}
	return out, nil
}

// entries pairs each permission's principals with its hosts; hosts default to def.
func (f *aclFlags) entries(def string) []struct {
	perm              auth.Permission
	principals, hosts []string
} {
	or := func(hosts []string) []string {
		if len(hosts) == 0 && def != "" {
			return []string{def}
		}
		return hosts
	}
	return []struct {
		perm              auth.Permission
		principals, hosts []string
	}{{auth.PermissionAllow, f.allowPrincipals, or(f.allowHosts)}, {auth.PermissionDeny, f.denyPrincipals, or(f.denyHosts)}}
}

// bindings is the product of the flags: every principal, host, operation and resource.
func (f *aclFlags) bindings() ([]auth.ACL, error) {
	pt, err := auth.ParsePatternType(f.patternType)
	if err != nil || (pt != auth.PatternLiteral && pt != auth.PatternPrefixed) {
		return nil, usagef("--resource-pattern-type %q: want literal or prefixed", f.patternType)
	}
	ops, err := f.ops(auth.OpAll)
	if err != nil {
		return nil, err
	}
	var out []auth.ACL
	for _, e := range f.entries(auth.WildcardHost) {
		for _, p := range e.principals {
			pr, err := auth.ParsePrincipal(p)
			if err != nil {
				return nil, usageError{err}
			}
			for _, h := range e.hosts {
				for _, op := range ops {
					for _, r := range f.resources() {
						a := auth.ACL{ResourceType: r.typ, PatternType: pt, Name: r.name, Principal: pr, Host: h, Operation: op, Permission: e.perm}
						if err := a.Validate(); err != nil {
							return nil, usageError{err}
						}
						out = append(out, a)
					}
				}
			}
		}
	}
	return out, nil
}

func (c *cli) aclAdd(args []string) error {
	fs := c.newFlagSet("acl add", "", "Add the ACL bindings the flags describe: every principal, host, operation and resource\n"+
		"given. Example: acl add --allow-principal User:alice --operation Read --operation Describe --topic orders")
	f := fs.aclFlags("literal")
	etcd := fs.etcdFlags()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	if len(f.allowPrincipals)+len(f.denyPrincipals) == 0 || len(f.resources()) == 0 {
		return usagef("acl add: give --allow-principal or --deny-principal, and a resource (--topic, --group, --cluster, --transactional-id)")
	}
	acls, err := f.bindings()
	if err != nil {
		return err
	}
	bs := make([]coord.ACLBinding, len(acls))
	for i, a := range acls {
		bs[i] = a.Binding()
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		if err := cl.PutACLs(ctx, bs); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "added %d ACL binding(s):\n", len(acls))
		return printACLs(c.stdout, acls)
	})
}

// filters are what list and remove select: one per resource (or every resource), permission and
// principal given (or any).
func (f *aclFlags) filters(listPrincipal string) ([]auth.ACLFilter, error) {
	pt, err := auth.ParsePatternType(f.patternType)
	if err != nil {
		return nil, usagef("--resource-pattern-type %q: want any, match, literal or prefixed", f.patternType)
	}
	ops, err := f.ops(auth.OpAny)
	if err != nil {
		return nil, err
	}
	res := f.resources()
	if len(res) == 0 {
		res = []resource{{typ: auth.ResourceAny}}
	}
	type who struct {
		perm      auth.Permission
		principal string
		hosts     []string
	}
	whos := []who{{auth.PermissionAny, listPrincipal, []string{""}}}
	if len(f.allowPrincipals)+len(f.denyPrincipals) > 0 {
		whos = nil
		for _, e := range f.entries("") {
			hosts := e.hosts
			if len(hosts) == 0 {
				hosts = []string{""}
			}
			for _, p := range e.principals {
				whos = append(whos, who{e.perm, p, hosts})
			}
		}
	}
	var out []auth.ACLFilter
	for _, r := range res {
		for _, w := range whos {
			for _, h := range w.hosts {
				for _, op := range ops {
					out = append(out, auth.ACLFilter{ResourceType: r.typ, PatternType: pt, Name: r.name, Principal: w.principal,
						Host: h, Operation: op, Permission: w.perm})
				}
			}
		}
	}
	return out, nil
}

// selectACLs reads every binding and keeps those some filter matches.
func selectACLs(ctx context.Context, cl *coord.Client, filters []auth.ACLFilter) ([]auth.ACL, []coord.ACLBinding, error) {
	stored, err := cl.ACLs(ctx)
	if err != nil {
		return nil, nil, err
	}
	var acls []auth.ACL
	var raw []coord.ACLBinding
	for _, b := range stored {
		a, err := auth.FromBinding(b)
		if err != nil {
			continue
		}
		for _, f := range filters {
			if f.Matches(a) {
				acls, raw = append(acls, a), append(raw, b)
				break
			}
		}
	}
	return acls, raw, nil
}

func (c *cli) aclList(args []string) error {
	fs := c.newFlagSet("acl list", "", "List ACL bindings: all, or those of the resources and principals given. With\n"+
		"--resource-pattern-type match, those that apply to the named resources (literal, * and prefixes).")
	f := fs.aclFlags("any")
	principal := fs.String("principal", "", "only the bindings of this `principal`")
	etcd := fs.etcdFlags()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	filters, err := f.filters(*principal)
	if err != nil {
		return err
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		acls, _, err := selectACLs(ctx, cl, filters)
		if err != nil {
			return err
		}
		return printACLs(c.stdout, acls)
	})
}

func (c *cli) aclRemove(args []string) error {
	fs := c.newFlagSet("acl remove", "", "Remove the ACL bindings of the resources given that match the other flags: of the\n"+
		"principals, hosts and operations given, or of any when none is given. Prints what it removed.")
	f := fs.aclFlags("literal")
	etcd := fs.etcdFlags()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	if len(f.resources()) == 0 {
		return usagef("acl remove: give a resource (--topic, --group, --cluster, --transactional-id)")
	}
	filters, err := f.filters("")
	if err != nil {
		return err
	}
	return c.withEtcd(etcd, func(ctx context.Context, cl *coord.Client) error {
		acls, raw, err := selectACLs(ctx, cl, filters)
		if err != nil {
			return err
		}
		if _, err := cl.DeleteACLs(ctx, raw); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "removed %d ACL binding(s):\n", len(acls))
		return printACLs(c.stdout, acls)
	})
}

func printACLs(w io.Writer, acls []auth.ACL) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tHOST\tOPERATION\tPERMISSION\tRESOURCE\tPATTERN\tNAME")
	for _, a := range acls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, a.Host, a.Operation, a.Permission, a.ResourceType, a.PatternType, a.Name)
	}
	return tw.Flush()
}
