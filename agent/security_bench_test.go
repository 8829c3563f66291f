package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/auth"
)

// BenchmarkSecuredProduce compares one producer's throughput through a PLAINTEXT listener and a
// SASL_SSL listener (TLS 1.3, SCRAM-SHA-512, ACLs on as a super user) of the same agent: 1 KiB
// records, acks=all, idempotent, 4 partitions, an in-memory object store. It prints MiB/s of each.
func BenchmarkSecuredProduce(b *testing.B) {
	f := newSecFixture(b)
	tc := newTestCluster(b)
	a := tc.agent("a1", func(c *Config) {
		f.listeners([]string{"admin"}, ProtocolSASLSSL)(c)
		c.Listeners = append([]ListenerConfig{{Name: ProtocolPlaintext, Protocol: ProtocolPlaintext, Addr: "127.0.0.1:0"}}, c.Listeners...)
		c.Security.SuperUsers = append(c.Security.SuperUsers, auth.User("ANONYMOUS"))
		c.FlushInterval = 20 * time.Millisecond
		c.Logger = nil
	})
	addUser(b, tc, "admin", "admin-secret", a)
	const records, size = 50000, 1 << 10
	value := make([]byte, size)
	for _, c := range []struct {
		name     string
		listener string
		tls      bool
		mech     sasl.Mechanism
	}{
		{"plaintext", ProtocolPlaintext, false, nil},
		{"sasl_ssl_scram", ProtocolSASLSSL, true, scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()},
	} {
		b.Run(c.name, func(b *testing.B) {
			opts := []kgo.Opt{kgo.SeedBrokers(listenerAddr(b, a, c.listener)), kgo.ProducerLinger(5 * time.Millisecond)}
			if c.tls {
				opts = append(opts, kgo.DialTLSConfig(f.clientTLS(b)))
			}
			if c.mech != nil {
				opts = append(opts, kgo.SASL(c.mech))
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			topic := fmt.Sprintf("bench-%s-%d", c.name, prefixSeq.Add(1))
			createTopic(b, cl, topic, 4, nil)
			b.SetBytes(records * size)
			b.ResetTimer()
			var total time.Duration
			for range b.N {
				start := time.Now()
				var wg sync.WaitGroup
				var failed error
				var mu sync.Mutex
				for range records {
					wg.Add(1)
					cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
						if err != nil {
							mu.Lock()
							failed = err
							mu.Unlock()
						}
						wg.Done()
					})
				}
				wg.Wait()
				if failed != nil {
					b.Fatal(failed)
				}
				total += time.Since(start)
			}
			mibs := float64(records*size*b.N) / (1 << 20) / total.Seconds()
			b.ReportMetric(mibs, "MiB/s")
			fmt.Printf("BenchmarkSecuredProduce/%s: %.1f MiB/s (%d records of %d B, %d runs)\n", c.name, mibs, records, size, b.N)
		})
	}
}
