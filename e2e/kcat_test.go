package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// needKcat returns kcat's path. kcat (librdkafka) is the client the README's quickstart uses, so a
// missing kcat fails rather than skips: "make deps" installs it.
func needKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run 'make deps' (or 'sudo apt-get install -y kcat')")
	}
	return path
}

// kcatFormat is what kcat -C prints per record; the values the tests write have no spaces.
const kcatFormat = "%p %o %k %s\n"

// parseKcat parses kcat -C output in kcatFormat.
func parseKcat(t *testing.T, out string) []record {
	t.Helper()
	var recs []record
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, " ")
		if len(f) != 4 {
			t.Fatalf("kcat printed %q, want \"partition offset key value\"", l)
		}
		p, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("kcat printed %q, want \"partition offset key value\"", l)
		}
		recs = append(recs, record{partition: int32(p), offset: o, key: f[2], value: f[3]})
	}
	return recs
}

// kcatConsume reads topic from the beginning to its end with kcat.
func kcatConsume(t *testing.T, kcat, brokers, topic string) []record {
	t.Helper()
	return parseKcat(t, mustRun(t, "", kcat, "-b", brokers, "-C", "-t", topic, "-e", "-q", "-o", "beginning", "-f", kcatFormat))
}

// kcat (librdkafka) produces 1000 lines with each codec to a 3-partition topic and reads them all back
// once, with dense offsets; the batches are stored as kcat compressed them. With keys, one key always
// lands in one partition; with idempotence on, the same holds.
func TestKcat(t *testing.T) {
	t.Parallel()
	kcat := needKcat(t)
	d := startDev(t, t.TempDir())
	brokers := d.brokers(t)

	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			topic := "kcat-" + codec
			createTopic(t, brokers, topic, 3)
			want := values(codec, 1000)
			mustRun(t, lines(want), kcat, "-b", brokers, "-P", "-t", topic, "-z", codec)
			recs := kcatConsume(t, kcat, brokers, topic)
			checkLog(t, recs, want)
			if !checkCodec(t, readAll(t, brokers, topic), codec, true) && codec == "lz4" {
				// librdkafka (rdkafka_feature.c) enables its LZ4 feature only when the broker's
				// ApiVersions lists FindCoordinator (key 10); without it, "kcat -d msg" logs "Broker
				// does not support compression type lz4: not compressing batch" and sends lz4 batches
				// uncompressed. The agent has to advertise FindCoordinator for librdkafka to use lz4.
				t.Errorf("kcat sent lz4 batches uncompressed: librdkafka saw no FindCoordinator in ApiVersions")
			}
		})
	}

	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"keys", nil},
		{"keys-idempotent", []string{"-X", "enable.idempotence=true", "-z", "zstd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := "kcat-" + tc.name
			createTopic(t, brokers, topic, 3)
			var in, want []string
			for i := range 500 {
				k := "key" + strconv.Itoa(i%20)
				v := tc.name + "-" + strconv.Itoa(i)
				in, want = append(in, k+":"+v), append(want, v)
			}
			mustRun(t, lines(in), kcat, append([]string{"-b", brokers, "-P", "-t", topic, "-K:"}, tc.extra...)...)
			recs := kcatConsume(t, kcat, brokers, topic)
			checkLog(t, recs, want)
			checkKeys(t, recs)
			checkSpread(t, recs, 3)
		})
	}
}

// checkKeys checks that every key was read from one partition only, and with the values written
// under it: key i%20 for value i.
func checkKeys(t *testing.T, recs []record) {
	t.Helper()
	partitionOf := map[string]int32{}
	for _, r := range recs {
		i, err := strconv.Atoi(r.value[strings.LastIndexByte(r.value, '-')+1:])
		if err != nil || r.key != "key"+strconv.Itoa(i%20) {
			t.Errorf("%d[%d]: key %q with value %q", r.partition, r.offset, r.key, r.value)
			continue
		}
		if p, ok := partitionOf[r.key]; ok && p != r.partition {
			t.Errorf("key %s is in partitions %d and %d", r.key, p, r.partition)
		}
		partitionOf[r.key] = r.partition
	}
}

// checkSpread checks that records landed in every one of n partitions, so that the per-partition checks
// covered them all. Only for keyed records: librdkafka's sticky partitioner may put a burst of keyless
// ones in a single partition.
func checkSpread(t *testing.T, recs []record, n int) {
	t.Helper()
	used := map[int32]bool{}
	for _, r := range recs {
		used[r.partition] = true
	}
	if len(used) != n {
		t.Errorf("records landed in %d of %d partitions", len(used), n)
	}
}
