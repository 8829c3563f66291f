package workload

import (
	"crypto/tls"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Security is how every client of the workload, the thundering herd and the hostile clients reach a
// secured cluster (chaos --security): TLS trusting the cluster's CA and a SCRAM-SHA-512 login, or
// nothing (the zero value: PLAINTEXT). Set it once, before anything starts; it is read, never
// written, afterwards.
var Security SecurityConfig

// SecurityConfig is the client side of a SASL_SSL listener.
type SecurityConfig struct {
	TLS        *tls.Config // nil: plaintext
	User, Pass string      // SCRAM-SHA-512; empty User: no SASL
}

// opts are the franz-go options of Security.
func (s SecurityConfig) opts() []kgo.Opt {
	var o []kgo.Opt
	if s.TLS != nil {
		o = append(o, kgo.DialTLSConfig(s.TLS.Clone()))
	}
	if s.User != "" {
		o = append(o, kgo.SASL(scram.Auth{User: s.User, Pass: s.Pass}.AsSha512Mechanism()))
	}
	return o
}
