package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// A user's producer and consumer byte rates are answered with ThrottleMillis as Kafka computes
// them, and the connection is muted that long (KIP-219): its next request is not read before.
// Without a quota nothing is throttled.
func TestQuotaThrottlesProduceAndFetch(t *testing.T) {
	t.Parallel()
	tc, a, admin, _ := securedPair(t, func(c *Config) { c.Security.QuotaWindowNum, c.Security.QuotaWindowSize = 2, 100*time.Millisecond })
	createTopic(t, admin, "q", 1, nil)
	bob := bobConn(t, a, "admin", "admin-secret")
	value := strings.Repeat("x", 100<<10)

	p := bob.produceOne("q", 0, valueBatch(-1, -1, 0, nil, value))
	wantOK(t, "produce without quota", p.ErrorCode)

	gen := a.cache.SecurityGeneration()
	if err := tc.client().AlterQuota(testCtx(t), coord.QuotaEntity{User: coord.Named("admin")},
		map[string]float64{auth.ProducerByteRate: 100 << 10, auth.ConsumerByteRate: 100 << 10}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the quota to reach the agent", func() bool { return a.cache.SecurityGeneration() != gen })

	corr := bob.send(produceReq("q", -1, map[int32][]byte{0: valueBatch(-1, -1, 0, nil, value)}), produceVersion)
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = produceVersion
	if got := bob.recv(resp); got != corr {
		t.Fatalf("correlation %d, want %d", got, corr)
	}
	throttle := time.Duration(resp.ThrottleMillis) * time.Millisecond
	// 100 KiB in a window of 100 ms is 1000 KiB/s against 100 KiB/s: (1000-100)/100 x 0.1 s, about
	// 0.9 s, less as the window measured grows.
	if throttle < 200*time.Millisecond || throttle > 2*time.Second {
		t.Fatalf("produce throttle %v, want about 0.9s", throttle)
	}
	sent := time.Now()
	md := bob.roundTrip(kmsg.NewPtrMetadataRequest(), 1).(*kmsg.MetadataResponse)
	if waited := time.Since(sent); waited < throttle*9/10 {
		t.Errorf("next request answered after %v: the connection was not muted for %v", waited, throttle)
	}
	if len(md.Brokers) != 1 {
		t.Fatalf("metadata: %d brokers", len(md.Brokers))
	}

	f := bob.fetchOne("q", 0, 0, 1<<20)
	wantOK(t, "fetch", f.ErrorCode)
	fr := bob.roundTrip(fetchReq("q", 0, 0, 1<<20, fetchPart{partition: 0, offset: 0, maxBytes: 1 << 20}), fetchVersion).(*kmsg.FetchResponse)
	if fr.ThrottleMillis <= 0 {
		t.Errorf("fetch of 200 KiB against 100 KiB/s: no throttle")
	}
	// A throttled fetch is answered at once without its records, as Kafka answers it.
	for _, ft := range fr.Topics {
		for _, fp := range ft.Partitions {
			if len(fp.RecordBatches) != 0 {
				t.Errorf("a throttled fetch was answered with %d bytes of records", len(fp.RecordBatches))
			}
		}
	}
}
