package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/agent"
	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/e2e/localpki"
)

// A secured cluster (shConfig.secure, target sh-1-sec) is sh-1 with one SASL_SSL listener, as
// docs/DEPLOY.md sets agents up: TLS with a certificate of a CA made for the run, SCRAM-SHA-512, ACLs
// on (no super user; the bench's user is granted what the workloads do). The bench's clients of that
// target connect over TLS, trusting the CA, and log in as that user.

const (
	secureUser      = "bench"
	securePassword  = "bench-secret"
	secureMechanism = "SCRAM-SHA-512"
)

// secureSetup makes the PKI, stores the bench user's SCRAM credential and its ACLs (what the workloads
// do: create, write, read and delete topics, idempotent producers, consumer groups), and makes the
// target's clients use TLS and SCRAM. It runs before the cluster's agents start.
func (c *shCluster) secureSetup(ctx context.Context) error {
	pki, err := localpki.Write(filepath.Join(c.dir, "pki"), "streamhouse-bench")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	c.pki = pki
	cl, err := coord.Connect(ctx, coord.Config{Endpoints: c.etcd.Endpoints()})
	if err != nil {
		return err
	}
	defer cl.Close()
	cred, err := auth.NewScramCredential(secureMechanism, securePassword, auth.DefaultScramIterations)
	if err != nil {
		return err
	}
	if err := cl.PutScramCredential(ctx, secureUser, secureMechanism, cred); err != nil {
		return err
	}
	pr, err := auth.ParsePrincipal("User:" + secureUser)
	if err != nil {
		return err
	}
	var bs []coord.ACLBinding
	for _, r := range []struct {
		typ  auth.ResourceType
		name string
	}{{auth.ResourceTopic, "*"}, {auth.ResourceGroup, "*"}, {auth.ResourceCluster, auth.ClusterName}} {
		bs = append(bs, auth.ACL{ResourceType: r.typ, PatternType: auth.PatternLiteral, Name: r.name, Principal: pr,
			Host: auth.WildcardHost, Operation: auth.OpAll, Permission: auth.PermissionAllow}.Binding())
	}
	if err := cl.PutACLs(ctx, bs); err != nil {
		return err
	}
	setClientOpts(c.cfg.name, kgo.DialTLSConfig(&tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: secureUser, Pass: securePassword}.AsSha512Mechanism()))
	return nil
}

// secureAgent gives an agent's config the SASL_SSL listener (in place of the PLAINTEXT one on
// cfg.KafkaAddr) and its security.
func (c *shCluster) secureAgent(cfg *agent.Config) error {
	ls, err := agent.ParseListeners("SASL_SSL://"+cfg.KafkaAddr, "", "")
	if err != nil {
		return err
	}
	cfg.Listeners = ls
	s := &cfg.Security
	s.TLSCertFile, s.TLSKeyFile = c.pki.Cert, c.pki.Key
	s.SASLMechanisms = []string{secureMechanism}
	s.Authorization = true
	return nil
}

// clientOpts are the further options of each target's clients (TLS and SASL of a secured target).
var clientOpts struct {
	sync.RWMutex
	m map[string][]kgo.Opt
}

func setClientOpts(target string, opts ...kgo.Opt) {
	clientOpts.Lock()
	defer clientOpts.Unlock()
	if clientOpts.m == nil {
		clientOpts.m = map[string][]kgo.Opt{}
	}
	clientOpts.m[target] = opts
}

func targetClientOpts(target string) []kgo.Opt {
	clientOpts.RLock()
	defer clientOpts.RUnlock()
	return clientOpts.m[target]
}
