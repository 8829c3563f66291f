package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/streamhouse/streamhouse/coord"
)

// sampleTimeout bounds one sample's etcd reads and bucket listing.
const sampleTimeout = 2 * time.Minute

// countsPerTxn is how many count-only range reads one etcd Txn carries: etcd's default --max-txn-ops,
// below what dev mode's embedded etcd allows.
const countsPerTxn = 128

// sampler measures a dev process from the outside: etcd through its client API, the bucket through
// the S3 API, memory through /proc and the agent's /metrics.
type sampler struct {
	dev        *devProc
	prefix     string // the cluster's etcd prefix
	etcd       *clientv3.Client
	s3         *s3.Client
	topicID    string // hex, as in etcd keys; empty until the topic exists
	partitions int32
}

func newSampler(ctx context.Context, d *devProc, prefix string) (*sampler, error) {
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{d.etcd}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	// Configured as segstore configures its client for an S3-compatible endpoint: path-style
	// addressing, checksums only where an API requires them, static credentials.
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(devCredential, devCredential, "")))
	if err != nil {
		etcd.Close()
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(d.s3)
		o.UsePathStyle = true
	})
	return &sampler{dev: d, prefix: prefix, etcd: etcd, s3: client}, nil
}

func (s *sampler) close() { _ = s.etcd.Close() }

// setTopic reads the topic's id from its etcd key, for counting its partitions' index keys.
func (s *sampler) setTopic(ctx context.Context, name string, partitions int32) error {
	resp, err := s.etcd.Get(ctx, s.prefix+"topics/"+name)
	if err != nil {
		return fmt.Errorf("reading topic %s from etcd: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("topic %s: no key %stopics/%s in etcd", name, s.prefix, name)
	}
	var t coord.Topic
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return fmt.Errorf("topic %s: %w", name, err)
	}
	s.topicID, s.partitions = t.ID.String(), partitions
	return nil
}

// take measures everything once. A measurement that fails leaves its figures notMeasured and is
// returned as an error, to be reported; the run goes on.
func (s *sampler) take(ctx context.Context, elapsed time.Duration, acked int64) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	smp := unmeasured(elapsed, acked)
	m := readMem(s.dev.pid())
	smp.RSS, smp.RSSAnon, smp.RSSFile = m.rss, m.anon, m.file
	var errs []error
	errs = append(errs, s.etcdKeys(ctx, &smp), s.etcdStatus(ctx, &smp), s.indexKeys(ctx, &smp), s.bucket(ctx, &smp))
	if v, err := goHeap(ctx, s.dev.http); err != nil {
		errs = append(errs, err)
	} else {
		smp.GoHeap = v
	}
	return smp, errors.Join(errs...)
}

// etcdKeys counts the keys under the prefix and under each directory, in one Txn of count-only
// reads, so that the counts are of one revision and "other" (the total less the directories) is exact.
func (s *sampler) etcdKeys(ctx context.Context, smp *sample) error {
	ops := []clientv3.Op{clientv3.OpGet(s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())}
	for _, d := range etcdDirs {
		ops = append(ops, clientv3.OpGet(s.prefix+d, clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	resp, err := s.etcd.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd key counts: %w", err)
	}
	total := resp.Responses[0].GetResponseRange().Count
	dirs := map[string]int64{}
	rest := total
	for i, d := range etcdDirs {
		n := resp.Responses[i+1].GetResponseRange().Count
		dirs[d], rest = n, rest-n
	}
	dirs[otherDir] = rest
	smp.EtcdKeys, smp.EtcdDirs = total, dirs
	return nil
}

func (s *sampler) etcdStatus(ctx context.Context, smp *sample) error {
	st, err := s.etcd.Status(ctx, s.dev.etcd)
	if err != nil {
		return fmt.Errorf("etcd status: %w", err)
	}
	smp.EtcdDBSize, smp.EtcdDBInUse = st.DbSize, st.DbSizeInUse
	return nil
}

// indexKeys counts each partition's keys under index/ and segs/ (count-only ranges, batched in Txns)
// and keeps the largest.
func (s *sampler) indexKeys(ctx context.Context, smp *sample) error {
	if s.topicID == "" {
		return nil
	}
	var ops []clientv3.Op
	for p := range s.partitions {
		for _, d := range []string{"index/", "segs/"} {
			ops = append(ops, clientv3.OpGet(fmt.Sprintf("%s%s%s/%d/", s.prefix, d, s.topicID, p), clientv3.WithPrefix(), clientv3.WithCountOnly()))
		}
	}
	perPart := make([]int64, s.partitions)
	for i := 0; i < len(ops); i += countsPerTxn {
		resp, err := s.etcd.Txn(ctx).Then(ops[i:min(i+countsPerTxn, len(ops))]...).Commit()
		if err != nil {
			return fmt.Errorf("etcd index key counts: %w", err)
		}
		for j, r := range resp.Responses {
			perPart[(i+j)/2] += r.GetResponseRange().Count
		}
	}
	smp.IndexKeysMax = 0
	for _, n := range perPart {
		smp.IndexKeysMax = max(smp.IndexKeysMax, n)
	}
	return nil
}

// bucket lists every object, by prefix.
func (s *sampler) bucket(ctx context.Context, smp *sample) error {
	byPrefix := map[string]objCount{}
	var total objCount
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.dev.bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing the bucket: %w", err)
		}
		for _, o := range page.Contents {
			k := objectPrefix(aws.ToString(o.Key))
			c := byPrefix[k]
			c.Objects++
			c.Bytes += aws.ToInt64(o.Size)
			byPrefix[k] = c
			total.Objects++
			total.Bytes += aws.ToInt64(o.Size)
		}
	}
	for _, k := range append(s3Prefixes[:len(s3Prefixes):len(s3Prefixes)], otherDir) {
		byPrefix[k] = byPrefix[k] // every prefix present: zero, not "not measured"
	}
	smp.S3, smp.S3Prefix = total, byPrefix
	return nil
}

func objectPrefix(key string) string {
	for _, p := range s3Prefixes {
		if strings.HasPrefix(key, p) {
			return p
		}
	}
	return otherDir
}

// goHeap reads go_memstats_heap_inuse_bytes from the first agent's /metrics: dev mode's agents share
// its process, so it is the whole process's heap.
func goHeap(ctx context.Context, httpAddrs []string) (int64, error) {
	if len(httpAddrs) == 0 {
		return notMeasured, errors.New("no agent /metrics")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpAddrs[0]+"/metrics", nil)
	if err != nil {
		return notMeasured, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return notMeasured, fmt.Errorf("agent /metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return notMeasured, fmt.Errorf("agent /metrics: go_memstats_heap_inuse_bytes %q", v)
			}
			return int64(f), nil
		}
	}
	return notMeasured, errors.New("agent /metrics: no go_memstats_heap_inuse_bytes")
}
