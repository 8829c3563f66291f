package main

import (
	"errors"
	"flag"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/streamhouse/streamhouse/agent"
	"github.com/streamhouse/streamhouse/coord"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "4194304", want: 4 << 20},
		{in: "4MiB", want: 4 << 20},
		{in: "64KiB", want: 64 << 10},
		{in: "64kib", want: 64 << 10},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "4M", want: 4 << 20},
		{in: "4Mi", want: 4 << 20},
		{in: "4MB", want: 4_000_000},
		{in: "1KB", want: 1000},
		{in: "1.5MiB", want: 3 << 19},
		{in: " 8 MiB ", want: 8 << 20},
		{in: "100B", want: 100},
		{in: "8EiB", bad: true},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "-1", bad: true},
		{in: "4 mebibytes", bad: true},
		{in: "1.2.3", bad: true},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "9223372036854775808", bad: true},
		{in: "8388608TiB", bad: true},
		{in: "1e3", bad: true},
	} {
		got, err := parseSize(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 100: "100", 4 << 20: "4MiB", 64 << 10: "64KiB", 3 << 19: "1536KiB", 1 << 30: "1GiB"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
		if back, err := parseSize(formatSize(in)); err != nil || back != in {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", in, back, err)
		}
	}
}

func TestAgentFlags(t *testing.T) {
	base := []string{"--etcd", "h1:2379", "--s3-bucket", "b"}
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(f *agentFlags) bool
		usage string // substring of the usage error, if one is wanted
	}{
		{name: "defaults", args: base, check: func(f *agentFlags) bool {
			return f.etcdPrefix == "/streamhouse/" && f.s3.Region == "us-east-1" && f.cfg.Group == "default" &&
				f.cfg.KafkaAddr == "127.0.0.1:9092" && f.cfg.LeaseTTL == 10*time.Second && f.cfg.FlushBytes == 4<<20 &&
				f.log.level == "info" && f.log.format == "text" && !f.s3.PathStyle && f.cfg.ID != "" &&
				f.cfg.OffsetsRetention == 168*time.Hour && f.etcdMaxTxnOps == 128 && f.etcdMaxRequestBytes == 3<<19 &&
				f.cfg.InternalAddr == "127.0.0.1:9192" && f.cfg.MaxDecompressedBatchBytes == 64<<20
		}},
		{name: "internal listener and decompression limit", args: append(base, "--internal-addr", "0.0.0.0:7000",
			"--max-decompressed-batch-bytes", "8MiB"),
			check: func(f *agentFlags) bool {
				return f.cfg.InternalAddr == "0.0.0.0:7000" && f.cfg.MaxDecompressedBatchBytes == 8<<20
			}},
		{name: "no internal listener", env: map[string]string{"STREAMHOUSE_ETCD": "e", "STREAMHOUSE_S3_BUCKET": "b",
			"STREAMHOUSE_INTERNAL_ADDR": ""}, args: []string{"--internal-addr="},
			check: func(f *agentFlags) bool { return f.cfg.InternalAddr == "" }},
		{name: "flags", args: append(base, "--flush-interval", "250ms", "--flush-bytes", "16MiB", "--cache-bytes=1GiB",
			"--max-buffered-bytes", "134217728", "--lease-ttl", "3s", "--s3-path-style", "--id", "a1", "--az", "z1",
			"--group", "g", "--auto-create-topics", "--default-partitions", "6", "--log-format", "json", "--log-level", "DEBUG",
			"--offsets-retention", "24h", "--etcd-max-txn-ops", "4096", "--etcd-max-request-bytes", "4MiB"),
			check: func(f *agentFlags) bool {
				return f.cfg.FlushInterval == 250*time.Millisecond && f.cfg.FlushBytes == 16<<20 && f.cfg.CacheBytes == 1<<30 &&
					f.cfg.MaxBufferedBytes == 128<<20 && f.cfg.LeaseTTL == 3*time.Second && f.s3.PathStyle && f.cfg.ID == "a1" &&
					f.cfg.AZ == "z1" && f.cfg.Group == "g" && f.cfg.AutoCreateTopics && f.cfg.DefaultPartitions == 6 &&
					f.log.format == "json" && f.log.level == "debug" && f.cfg.OffsetsRetention == 24*time.Hour &&
					f.etcdMaxTxnOps == 4096 && f.etcdMaxRequestBytes == 4<<20
			}},
		{name: "env only", env: map[string]string{"STREAMHOUSE_ETCD": "e1:2379,e2:2379", "STREAMHOUSE_S3_BUCKET": "eb",
			"STREAMHOUSE_FLUSH_BYTES": "64KiB", "STREAMHOUSE_S3_PATH_STYLE": "true", "STREAMHOUSE_LEASE_TTL": "5s",
			"STREAMHOUSE_ETCD_PREFIX": "/x/", "STREAMHOUSE_AZ": "", "STREAMHOUSE_ETCD_MAX_TXN_OPS": "1024",
			"STREAMHOUSE_ETCD_MAX_REQUEST_BYTES": "4194304"},
			check: func(f *agentFlags) bool {
				return f.etcd == "e1:2379,e2:2379" && f.s3.Bucket == "eb" && f.cfg.FlushBytes == 64<<10 && f.s3.PathStyle &&
					f.cfg.LeaseTTL == 5*time.Second && f.etcdPrefix == "/x/" && f.cfg.AZ == "" && f.etcdMaxTxnOps == 1024 &&
					f.etcdMaxRequestBytes == 4<<20
			}},
		{name: "request bytes below etcd's default", args: append(base, "--etcd-max-request-bytes=512KiB"),
			check: func(f *agentFlags) bool { return f.etcdMaxRequestBytes == 512<<10 }},
		{name: "flag beats env", args: append(base, "--flush-interval=1s", "--az", "flag"),
			env: map[string]string{"STREAMHOUSE_FLUSH_INTERVAL": "nonsense", "STREAMHOUSE_AZ": "env", "STREAMHOUSE_GROUP": "eg"},
			check: func(f *agentFlags) bool {
				return f.cfg.FlushInterval == time.Second && f.cfg.AZ == "flag" && f.cfg.Group == "eg"
			}},
		{name: "empty env is unset", args: base, env: map[string]string{"STREAMHOUSE_FLUSH_INTERVAL": "", "STREAMHOUSE_KAFKA_ADDR": ""},
			check: func(f *agentFlags) bool {
				return f.cfg.FlushInterval == 100*time.Millisecond && f.cfg.KafkaAddr == "127.0.0.1:9092"
			}},
		{name: "flags after --", args: append(base, "--", "--az"), usage: "want 0 argument(s)"},
		{name: "bad env", args: base, env: map[string]string{"STREAMHOUSE_FLUSH_INTERVAL": "soon"}, usage: "STREAMHOUSE_FLUSH_INTERVAL"},
		{name: "bad env size", args: base, env: map[string]string{"STREAMHOUSE_CACHE_BYTES": "lots"}, usage: "STREAMHOUSE_CACHE_BYTES"},
		{name: "bad env bool", args: base, env: map[string]string{"STREAMHOUSE_S3_PATH_STYLE": "perhaps"}, usage: "STREAMHOUSE_S3_PATH_STYLE"},
		{name: "bad flag size", args: append(base, "--flush-bytes", "4 parsecs"), usage: "--flush-bytes"},
		{name: "bad duration", args: append(base, "--lease-ttl", "10"), usage: "lease-ttl"},
		{name: "bad retention", args: append(base, "--offsets-retention", "7d"), usage: "offsets-retention"},
		{name: "bad level", args: append(base, "--log-level", "loud"), usage: "trace, debug, info, warn, error"},
		{name: "bad format", args: append(base, "--log-format", "xml"), usage: "want one of text, json"},
		{name: "bad int32", args: append(base, "--default-partitions", "3000000000"), usage: "32-bit"},
		{name: "too few txn ops", args: append(base, "--etcd-max-txn-ops", "1"),
			usage: `invalid value "1" for --etcd-max-txn-ops: want an integer of at least 2`},
		{name: "negative txn ops", args: append(base, "--etcd-max-txn-ops=-3"), usage: "--etcd-max-txn-ops: want an integer of at least 2"},
		{name: "bad txn ops", args: append(base, "--etcd-max-txn-ops", "x"), usage: "--etcd-max-txn-ops: want an integer of at least 2"},
		{name: "bad env txn ops", args: base, env: map[string]string{"STREAMHOUSE_ETCD_MAX_TXN_OPS": "0"}, usage: "STREAMHOUSE_ETCD_MAX_TXN_OPS"},
		{name: "bad request bytes", args: append(base, "--etcd-max-request-bytes", "x"),
			usage: `invalid value "x" for --etcd-max-request-bytes: want a size from 64KiB to 1GiB, such as 4MiB`},
		{name: "negative request bytes", args: append(base, "--etcd-max-request-bytes=-1"),
			usage: "--etcd-max-request-bytes: want a size from 64KiB to 1GiB"},
		{name: "too few request bytes", args: append(base, "--etcd-max-request-bytes", "1KiB"),
			usage: `invalid value "1KiB" for --etcd-max-request-bytes: want a size from 64KiB to 1GiB`},
		{name: "too many request bytes", args: append(base, "--etcd-max-request-bytes", "2GiB"),
			usage: "--etcd-max-request-bytes: want a size from 64KiB to 1GiB"},
		{name: "bad env request bytes", args: base, env: map[string]string{"STREAMHOUSE_ETCD_MAX_REQUEST_BYTES": "1KiB"},
			usage: `invalid value "1KiB" for STREAMHOUSE_ETCD_MAX_REQUEST_BYTES: want a size from 64KiB to 1GiB`},
		{name: "transactions on by default", args: base, check: func(f *agentFlags) bool { return f.cfg.Transactions }},
		{name: "transactions off", args: append(base, "--transactions=false"), check: func(f *agentFlags) bool { return !f.cfg.Transactions }},
		{name: "transactions off by env", args: base, env: map[string]string{"STREAMHOUSE_TRANSACTIONS": "false"},
			check: func(f *agentFlags) bool { return !f.cfg.Transactions }},
		{name: "transactions by their earlier name", args: append(base, "--experimental-transactions"),
			check: func(f *agentFlags) bool { return f.cfg.Transactions }},
		{name: "unknown flag", args: append(base, "--bogus"), usage: "flag provided but not defined: --bogus"},
		{name: "etcd of dev by default", args: []string{"--s3-bucket", "b"}, check: func(f *agentFlags) bool { return f.etcd == "http://127.0.0.1:2379" }},
		{name: "missing bucket", args: []string{"--etcd", "e"}, usage: "--s3-bucket is required"},
		{name: "stray argument", args: append(base, "extra"), usage: "want 0 argument(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, f := newTestCLI(t, tc.env, "").agentFlagSet()
			_, err := fs.parseN(tc.args, 0)
			if tc.usage != "" {
				if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tc.usage) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(f) {
				t.Errorf("unexpected values: %+v", f)
			}
		})
	}
}

func TestDevFlags(t *testing.T) {
	env := map[string]string{"STREAMHOUSE_AGENTS": "3", "STREAMHOUSE_DATA_DIR": "/tmp/x", "STREAMHOUSE_ETCD": "ignored:1"}
	fs, f := newTestCLI(t, env, "").devFlagSet()
	if _, err := fs.parseN([]string{"--kafka-addr", "127.0.0.1:19092", "--flush-bytes", "1MiB"}, 0); err != nil {
		t.Fatal(err)
	}
	if f.agents != 3 || f.dataDir != "/tmp/x" || f.cfg.KafkaAddr != "127.0.0.1:19092" || f.cfg.FlushBytes != 1<<20 ||
		f.etcdAddr != "127.0.0.1:2379" || f.s3Addr != "127.0.0.1:9000" || f.cfg.HTTPAddr != "127.0.0.1:8080" {
		t.Errorf("unexpected values: %+v", f)
	}
	if err := f.validate(); err != nil {
		t.Error(err)
	}
	cfg, err := f.agentConfig(3, hclog.NewNullLogger())
	if err == nil && (cfg.ID != "dev-3" || cfg.KafkaAddr != "127.0.0.1:19094" || cfg.HTTPAddr != "127.0.0.1:8082" ||
		cfg.InternalAddr != "127.0.0.1:9194") {
		t.Errorf("agent 3: %s %s %s %s", cfg.ID, cfg.KafkaAddr, cfg.HTTPAddr, cfg.InternalAddr)
	}
	f.agents = -1
	if err := f.validate(); err == nil {
		t.Error("--agents -1 accepted")
	}
}

// dev's --etcd-max-txn-ops is both the embedded etcd's --max-txn-ops and what its agents pack to:
// 4096 by default, so that a flush's index commit over 1,024 partitions is one Txn.
func TestDevFlagsMaxTxnOps(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		want  int
		usage string
	}{
		{want: 4096},
		{args: []string{"--etcd-max-txn-ops", "1024"}, want: 1024},
		{args: []string{"--etcd-max-txn-ops", "128"}, want: 128},
		{args: []string{"--etcd-max-txn-ops", "64"}, usage: `invalid value "64" for --etcd-max-txn-ops: want an integer of at least 128`},
		{args: []string{"--etcd-max-txn-ops", "many"}, usage: "--etcd-max-txn-ops: want an integer of at least 128"},
	} {
		ec, cc, ok := devEtcdConfigs(t, tc.args, nil, tc.usage)
		if !ok {
			continue
		}
		if ec.MaxTxnOps != tc.want || cc.MaxTxnOps != tc.want {
			t.Errorf("%q: embedded etcd allows %d operations per Txn, agents pack %d; want %d", tc.args, ec.MaxTxnOps, cc.MaxTxnOps, tc.want)
		}
	}
}

// dev's --etcd-max-request-bytes is both the embedded etcd's --max-request-bytes and what its agents
// assume: 4 MiB by default, so that a flush's index commit over 1,024 partitions of idempotent
// producers is one Txn; never below etcd's default, which agents fall back to.
func TestDevFlagsMaxRequestBytes(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		env   map[string]string
		want  int64
		usage string
	}{
		{want: 4 << 20},
		{args: []string{"--etcd-max-request-bytes", "8MiB"}, want: 8 << 20},
		{args: []string{"--etcd-max-request-bytes", "1536KiB"}, want: 3 << 19},
		{env: map[string]string{"STREAMHOUSE_ETCD_MAX_REQUEST_BYTES": "10MiB"}, want: 10 << 20},
		{args: []string{"--etcd-max-request-bytes", "1MiB"},
			usage: `invalid value "1MiB" for --etcd-max-request-bytes: want a size from 1536KiB to 1GiB, such as 4MiB`},
		{args: []string{"--etcd-max-request-bytes", "x"}, usage: "--etcd-max-request-bytes: want a size from 1536KiB to 1GiB"},
		{args: []string{"--etcd-max-request-bytes=-1"}, usage: "--etcd-max-request-bytes: want a size from 1536KiB to 1GiB"},
	} {
		ec, cc, ok := devEtcdConfigs(t, tc.args, tc.env, tc.usage)
		if !ok {
			continue
		}
		if ec.MaxRequestBytes != tc.want || cc.MaxRequestBytes != tc.want {
			t.Errorf("%q %v: embedded etcd takes requests of %d bytes, agents assume %d; want %d", tc.args, tc.env,
				ec.MaxRequestBytes, cc.MaxRequestBytes, tc.want)
		}
	}
}

func TestOffsetPort(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		delta int
		want  string
	}{
		{"127.0.0.1:9092", 0, "127.0.0.1:9092"},
		{"127.0.0.1:9092", 2, "127.0.0.1:9094"},
		{"127.0.0.1:0", 5, "127.0.0.1:0"},
		{"[::1]:8080", 1, "[::1]:8081"},
		{":2379", 1, ":2380"},
		{"127.0.0.1:65535", 1, ""},
		{"127.0.0.1", 0, ""},
		{"127.0.0.1:http", 0, ""},
	} {
		got, err := offsetPort(tc.addr, tc.delta)
		if (tc.want == "") != (err != nil) || got != tc.want {
			t.Errorf("offsetPort(%q, %d) = %q, %v; want %q", tc.addr, tc.delta, got, err, tc.want)
		}
	}
}

func TestInterspersedArgs(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		wantPos   string
		wantParts int32
		wantConf  int
	}{
		{[]string{"t", "--partitions", "3"}, "t", 3, 0},
		{[]string{"--partitions=3", "t"}, "t", 3, 0},
		{[]string{"t", "--config", "a=1", "--config", "b=2=3", "--partitions", "2"}, "t", 2, 2},
		{[]string{"--", "-t"}, "-t", -1, 0},
	} {
		fs := newTestCLI(t, nil, "").newFlagSet("topic create", "NAME", "")
		parts := int32(-1)
		confs := map[string]string{}
		fs.Var(int32Value{&parts}, "partitions", "")
		fs.Var(configsValue{&confs}, "config", "")
		pos, err := fs.parseN(tc.args, 1)
		if err != nil || pos[0] != tc.wantPos || parts != tc.wantParts || len(confs) != tc.wantConf {
			t.Errorf("%q: pos %q parts %d confs %v err %v", tc.args, pos, parts, confs, err)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"first\nsecond":           "first; second",
		"a\r\n  b\n\nc\n":         "a; b; c",
		"trailing newline only\n": "trailing newline only",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	fs, _ := newTestCLI(t, nil, "").agentFlagSet()
	if _, err := fs.parseN([]string{"--help"}, 0); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
}

// devEtcdConfigs parses dev's flags and returns the embedded etcd's configuration and its agents' coord
// configuration. With usage set, parsing must fail with a usage error containing it, and ok is false.
func devEtcdConfigs(t *testing.T, args []string, env map[string]string, usage string) (ec coord.EmbedConfig, cc coord.Config, ok bool) {
	t.Helper()
	fs, f := newTestCLI(t, env, "").devFlagSet()
	_, err := fs.parseN(args, 0)
	if usage != "" {
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), usage) {
			t.Errorf("%q: err = %v, want a usage error containing %q", args, err, usage)
		}
		return ec, cc, false
	}
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if ec, err = f.embedConfig(hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.agentConfig(1, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return ec, f.coordConfig([]string{"127.0.0.1:2379"}, cfg), true
}

// limitArgs sets every limit; wantLimits checks a config got them.
var limitArgs = []string{"--max-connections", "100", "--max-connections-per-ip", "10", "--connections-max-idle", "1m",
	"--frame-timeout", "5s", "--max-request-bytes", "8MiB", "--queued-max-request-bytes", "64MiB", "--fetch-max-wait", "2s",
	"--max-partitions-per-request", "50", "--max-partitions", "500", "--max-producer-ids-per-partition", "7",
	"--group-max-size", "9"}

func wantLimits(t *testing.T, cfg agent.Config) {
	t.Helper()
	l := cfg.Limits
	if l.MaxConnections != 100 || l.MaxConnectionsPerIP != 10 || l.ConnectionsMaxIdle != time.Minute ||
		l.FrameTimeout != 5*time.Second || cfg.MaxRequestBytes != 8<<20 || l.QueuedMaxRequestBytes != 64<<20 ||
		l.FetchMaxWait != 2*time.Second || l.MaxPartitionsPerRequest != 50 || l.MaxPartitions != 500 ||
		l.MaxProducerIDsPerPartition != 7 || l.GroupMaxSize != 9 {
		t.Errorf("limits %+v, max request bytes %d", l, cfg.MaxRequestBytes)
	}
}

// Every limit is a flag of agent and of dev, and a variable; a budget below 2.5 frames is refused.
func TestLimitFlags(t *testing.T) {
	fs, f := newTestCLI(t, nil, "").agentFlagSet()
	if _, err := fs.parseN(append([]string{"--etcd", "e", "--s3-bucket", "b"}, limitArgs...), 0); err != nil {
		t.Fatal(err)
	}
	wantLimits(t, f.cfg)

	env := map[string]string{"STREAMHOUSE_GROUP_MAX_SIZE": "9", "STREAMHOUSE_MAX_REQUEST_BYTES": "8MiB"}
	fs, f = newTestCLI(t, env, "").agentFlagSet()
	if _, err := fs.parseN([]string{"--etcd", "e", "--s3-bucket", "b"}, 0); err != nil {
		t.Fatal(err)
	}
	if f.cfg.GroupMaxSize != 9 || f.cfg.MaxRequestBytes != 8<<20 {
		t.Errorf("from the environment: group max size %d, max request bytes %d", f.cfg.GroupMaxSize, f.cfg.MaxRequestBytes)
	}

	dfs, df := newTestCLI(t, nil, "").devFlagSet()
	if _, err := dfs.parseN(limitArgs, 0); err != nil {
		t.Fatal(err)
	}
	cfg, err := df.agentConfig(1, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	wantLimits(t, cfg)

	err = newTestCLI(t, nil, "").agent([]string{"--etcd", "e", "--s3-bucket", "b", "--queued-max-request-bytes", "100MiB"})
	if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "2.5 times max request bytes") {
		t.Errorf("a budget of one frame: %v, want a usage error", err)
	}
}

// dev's agents share the connections the open-file limit allows, unless --max-connections is given.
func TestDevSharesConnections(t *testing.T) {
	fs, f := newTestCLI(t, nil, "").devFlagSet()
	if _, err := fs.parseN([]string{"--agents", "4"}, 0); err != nil {
		t.Fatal(err)
	}
	f.shareConnections()
	if all := agent.MaxConnectionsForFileLimit(); all > 0 && f.cfg.MaxConnections != max(1, all/4) {
		t.Errorf("each of 4 agents may open %d connections of the %d the file limit allows", f.cfg.MaxConnections, all)
	}
	fs, f = newTestCLI(t, nil, "").devFlagSet()
	if _, err := fs.parseN([]string{"--agents", "4", "--max-connections", "7"}, 0); err != nil {
		t.Fatal(err)
	}
	f.shareConnections()
	if f.cfg.MaxConnections != 7 {
		t.Errorf("--max-connections 7 became %d", f.cfg.MaxConnections)
	}
}
