package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--seed", "42", "--mode", "long", "--duration", "5m", "--faults", "agent-kill, s3-errors", "--churn", "0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.seed != 42 || cfg.mode != modeLong || cfg.duration != 5*time.Minute || cfg.churn >= 0 ||
		!slices.Equal(cfg.only, []string{"agent-kill", "s3-errors"}) {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg, err := parseFlags(nil); err != nil || cfg.seed == 0 || cfg.mode != modeCI || cfg.rounds != 2 || cfg.txnProducers != 3 || cfg.txnParts != 4 {
		t.Errorf("defaults: %+v, %v (a seed of 0 must be replaced by a new one)", cfg, err)
	}
	for _, bad := range [][]string{{"--mode", "forever"}, {"--agents", "1"}, {"--rounds", "0"}, {"extra"}, {"--txn-producers", "-1"}, {"--txn-partitions", "0"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFindPanics(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"a1.log":    "2025 [INFO] started\npanic: runtime error: index out of range\n\ngoroutine 1 [running]:\n",
		"a2.log":    "2025 [INFO] started\n2025 [WARN] a message mentioning panic: in passing\n",
		"etcd1.log": "\nfatal error: concurrent map writes\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := findPanics(dir); !slices.Equal(got, []string{"a1.log", "etcd1.log"}) {
		t.Errorf("findPanics = %v, want a1.log and etcd1.log", got)
	}
}
