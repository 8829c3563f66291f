package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// agentProc is a running "streamhouse agent" and the addresses it bound.
type agentProc struct {
	*proc
	kafka string // Kafka address
	http  string // HTTP base URL
}

// startAgent runs the agent command that dev --agents 0 printed, with extra flags, JSON logs (to read
// the ports it bound: the printed command asks for port 0) and waits until /readyz answers 200.
func startAgent(t *testing.T, d *dev, name string, extra ...string) *agentProc {
	t.Helper()
	return startAgentLimited(t, d, name, 0, extra...)
}

// startAgentLimited is startAgent with the agent's open-file limit lowered to nofile (0: as it is).
func startAgentLimited(t *testing.T, d *dev, name string, nofile int, extra ...string) *agentProc {
	t.Helper()
	env, args := parseAgentCommand(t, d.line(t, "start an agent with: "))
	args = append(append(args, extra...), "--log-format", "json")
	a := &agentProc{proc: startLimited(t, name, env, nofile, args...)}
	started := a.waitLog(t, "agent started", startTimeout)
	kafka, _ := started["kafka"].(string)
	http, _ := started["http"].(string)
	if kafka == "" || http == "" {
		t.Fatalf("%s: no kafka or http address in its start-up log line %v", name, started)
	}
	a.kafka, a.http = kafka, "http://"+http
	waitReady(t, a.proc, a.http+"/readyz")
	return a
}

// parseAgentCommand splits dev's example "VAR=value ... streamhouse agent --flag ..." into the
// environment and the arguments after "streamhouse".
func parseAgentCommand(t *testing.T, line string) (env, args []string) {
	t.Helper()
	fields := strings.Fields(line)
	for i, f := range fields {
		if f == "streamhouse" {
			if i+1 == len(fields) || fields[i+1] != "agent" {
				break
			}
			return fields[:i], fields[i+1:]
		}
		if !strings.Contains(f, "=") {
			break
		}
	}
	t.Fatalf("dev printed %q, want \"[VAR=value ...] streamhouse agent --flag ...\"", line)
	return nil, nil
}

// dev --agents 0 runs only etcd and S3 and prints an agent command; a separate agent process started
// with that command serves Kafka clients, describes itself as the partitions' leader, and stops with
// exit 0 on SIGTERM. A second agent with another id, which shares nothing with the first but etcd and
// S3, then serves everything the first wrote and takes new records at the next offsets.
func TestAgentJoinsDev(t *testing.T) {
	t.Parallel()
	kcat := needKcat(t)
	d := startDev(t, t.TempDir(), "--agents", "0")
	if addrs := d.out.all("kafka address: "); len(addrs) > 0 {
		t.Errorf("dev --agents 0 printed kafka addresses %v", addrs)
	}

	a1 := startAgent(t, d, "agent-1", "--az", "zone-a")
	createTopic(t, a1.kafka, "joined", 3)
	first := values("agent-1", 500)
	mustRun(t, lines(first), kcat, "-b", a1.kafka, "-P", "-t", "joined", "-z", "zstd")
	if !hasLine(sh(t, a1.kafka, "", "topic", "list"), "joined", "3") {
		t.Errorf("topic list does not show joined with 3 partitions")
	}
	checkLog(t, kcatConsume(t, kcat, a1.kafka, "joined"), first)
	checkDescribe(t, sh(t, a1.kafka, "", "topic", "describe", "joined"), a1.kafka, "zone-a")
	a1.stop(t)

	a2 := startAgent(t, d, "agent-2", "--id", "agent-2")
	recs := readAll(t, a2.kafka, "joined")
	checkLog(t, recs, first)
	checkContinues(t, a2.kafka, "joined", first)
	checkDescribe(t, sh(t, a2.kafka, "", "topic", "describe", "joined"), a2.kafka, "-")
}

// checkDescribe checks that "topic describe" shows 3 partitions, each led by the agent at addr in rack.
func checkDescribe(t *testing.T, out, addr, rack string) {
	t.Helper()
	if !strings.Contains(out, "partitions: 3\n") {
		t.Errorf("topic describe:\n%s\nwant 3 partitions", out)
	}
	for p := range 3 {
		found := false
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) >= 4 && f[0] == fmt.Sprint(p) {
				found = f[2] == addr && f[3] == rack
			}
		}
		if !found {
			t.Errorf("topic describe:\n%s\nwant partition %d led by %s in rack %s", out, p, addr, rack)
		}
	}
}

// hasLine reports whether out has a line whose whitespace-separated fields are fields.
func hasLine(out string, fields ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		if slices.Equal(strings.Fields(l), fields) {
			return true
		}
	}
	return false
}
