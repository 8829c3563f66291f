#!/usr/bin/env bash
# compat-secure.sh BIN: franz-go's integration suite (e2e/kgo-integration.re) against StreamHouse with
# SASL listeners and ACLs on, as `make compat-secure` runs it (docs/DEPLOY.md, "Checking a secured
# cluster with franz-go's suite").
#
# `streamhouse dev --agents 0` gives etcd and S3; AGENTS agent processes beside it each serve
#   PLAINTEXT       the suite's own clients (KGO_SEEDS); principal User:ANONYMOUS
#   SASL_PLAINTEXT  TestSCRAMAuth, TestSCRAMAuthBadCredentials, TestOAuthAuth (KGO_TEST_SCRAM_SEEDS,
#                   KGO_TEST_OAUTH_SEEDS) with SCRAM-SHA-256/512 and OAUTHBEARER (unsecured tokens,
#                   Kafka's default validator, which TestOAuthAuth expects)
# with ACLs enforced (a listener other than PLAINTEXT turns them on), no super users and
# allow.everyone.if.no.acl.found off: every principal the tests use gets what it needs from
# `streamhouse acl add`, nothing more:
#   User:ANONYMOUS  All on every topic, group and transactional id, and on the cluster (the suite creates
#                   and deletes topics, runs groups and idempotent producers)
#   User:kgo        the SCRAM user: Describe on the cluster and on every topic (TestSCRAMAuth's Metadata)
#   User:admin      TestOAuthAuth's token subject: the same Describe
# The suite runs with SCRAM-SHA-256, then the three SASL tests again with SCRAM-SHA-512.
#
# Environment: GO, AGENTS (3), KGO_TEST_RECORDS, COMPAT_TIMEOUT, COMPAT_SKIP, COMPAT_RUN (default: the
# whole suite), AGENT_FLAGS (more agent flags; default --flush-interval 10ms, as make compat).
set -euo pipefail

BIN=$(realpath "${1:?usage: compat-secure.sh path/to/streamhouse}")
GO=${GO:-go}
AGENTS=${AGENTS:-3}
KGO_TEST_RECORDS=${KGO_TEST_RECORDS:-50000}
COMPAT_TIMEOUT=${COMPAT_TIMEOUT:-20m}
COMPAT_SKIP=${COMPAT_SKIP:-}
COMPAT_RUN=${COMPAT_RUN:-$(cat "$(dirname "$0")/kgo-integration.re")}
AGENT_FLAGS=${AGENT_FLAGS:---flush-interval 10ms}
SASL_RE='^(TestSCRAMAuth|TestSCRAMAuthBadCredentials|TestOAuthAuth)$'
USER=kgo
PASS=kgo-secret-$RANDOM$RANDOM

tmp=$(mktemp -d)
pids=()
stop() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		timeout 30 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap stop EXIT
fail() {
	echo "compat-secure: $*" >&2
	for f in "$tmp"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done
	exit 1
}
# freeports N prints N distinct loopback ports nothing listens on, released at once for the agents to
# take. They are picked below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range),
# not by the kernel from it: a port from that range can be handed to an outgoing connection (the
# agents' own, a test's) before the agent meant to listen on it binds it.
freeports() {
	python3 -c '
import random, socket, sys
want = int(sys.argv[1])
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports, tries = [], 0
while len(ports) < want:
    tries += 1
    if tries > 10000:
        raise SystemExit("no %d free ports below the ephemeral range" % want)
    port = random.randrange(10000, max(low, 10001))
    if port in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    ports.append(port)
print(*ports)
' "$1"
}
waitready() { # URL PID
	for _ in $(seq 120); do
		if curl -fsS --max-time 2 "$1/readyz" >/dev/null 2>&1; then return 0; fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

"$BIN" dev --agents 0 --data-dir "$tmp/data" --etcd-addr 127.0.0.1:0 --s3-addr 127.0.0.1:0 \
	>"$tmp/dev.out" 2>"$tmp/dev.log" &
pids+=($!)
for _ in $(seq 120); do
	if grep -q '^ready' "$tmp/dev.out"; then break; fi
	kill -0 "${pids[0]}" 2>/dev/null || fail "streamhouse dev exited"
	sleep 0.5
done
etcd=$(sed -n 's/^etcd endpoint: //p' "$tmp/dev.out")
s3=$(sed -n 's/^s3 endpoint: //p' "$tmp/dev.out")
bucket=$(sed -n 's/^s3 bucket: //p' "$tmp/dev.out")
txnops=$(sed -n 's/.*--etcd-max-txn-ops \([^ ]*\).*/\1/p' "$tmp/dev.out")
reqbytes=$(sed -n 's/.*--etcd-max-request-bytes \([^ ]*\).*/\1/p' "$tmp/dev.out")
[ -n "$etcd" ] && [ -n "$s3" ] && [ -n "$txnops" ] || fail "streamhouse dev did not start within 60s"

# Users and ACLs before the agents start, as docs/DEPLOY.md orders it.
printf '%s\n' "$PASS" | "$BIN" user add --etcd "$etcd" --password-stdin "$USER" >/dev/null
acl() { "$BIN" acl add --etcd "$etcd" "$@" >/dev/null; }
acl --allow-principal User:ANONYMOUS --operation All --topic '*' --group '*' --transactional-id '*' --cluster
acl --allow-principal "User:$USER" --allow-principal User:admin --operation Describe --topic '*' --cluster

plain=() sasl=()
read -r -a ports <<<"$(freeports $((4 * AGENTS)))"
for i in $(seq "$AGENTS"); do
	p=${ports[4 * i - 4]} s=${ports[4 * i - 3]} h=${ports[4 * i - 2]} n=${ports[4 * i - 1]}
	plain+=("127.0.0.1:$p") sasl+=("127.0.0.1:$s")
	# shellcheck disable=SC2086 # AGENT_FLAGS is a list of flags
	AWS_ACCESS_KEY_ID=streamhouse AWS_SECRET_ACCESS_KEY=streamhouse "$BIN" agent --id "agent-$i" \
		--etcd "$etcd" --etcd-max-txn-ops "$txnops" --etcd-max-request-bytes "$reqbytes" \
		--s3-endpoint "$s3" --s3-bucket "$bucket" --s3-path-style \
		--listeners "PLAINTEXT://127.0.0.1:$p,SASL_PLAINTEXT://127.0.0.1:$s" \
		--sasl-enabled-mechanisms SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER --sasl-oauthbearer-unsecured \
		--http-addr "127.0.0.1:$h" --internal-addr "127.0.0.1:$n" $AGENT_FLAGS \
		>"$tmp/agent-$i.log" 2>&1 &
	pids+=($!)
	waitready "http://127.0.0.1:$h" "${pids[-1]}" || fail "agent-$i did not become ready within 60s"
done
seeds=$(IFS=,; echo "${plain[*]}")
sseeds=$(IFS=,; echo "${sasl[*]}")
echo "compat-secure: $AGENTS agents ready, ACLs on; PLAINTEXT $seeds, SASL_PLAINTEXT $sseeds"

status=0
export KGO_SEEDS="$seeds" KGO_TEST_RF=1 KGO_TEST_RECORDS KGO_TEST_SCRAM_SEEDS="$sseeds" KGO_TEST_OAUTH_SEEDS="$sseeds"
KGO_TEST_SCRAM="$USER:$PASS" $GO test -count=1 -v -timeout "$COMPAT_TIMEOUT" -run "$COMPAT_RUN" -skip "$COMPAT_SKIP" \
	github.com/twmb/franz-go/pkg/kgo 2>&1 | tee "$tmp/kgo.txt" || status=$?
echo "compat-secure: the SASL tests again with SCRAM-SHA-512"
KGO_TEST_SCRAM="$USER:$PASS:512" $GO test -count=1 -v -timeout 5m -run "$SASL_RE" \
	github.com/twmb/franz-go/pkg/kgo 2>&1 | tee "$tmp/kgo512.txt" || status=$?

report() { # FILE NAME
	echo "compat-secure: results ($2)"
	grep -E '^--- (PASS|FAIL|SKIP)' "$1" | sort -k2,2 -s || true
	count() { grep -c "^--- $1" "$2" || true; }
	echo "compat-secure: $2: $(count PASS "$1") passed, $(count FAIL "$1") failed, $(count SKIP "$1") skipped"
}
report "$tmp/kgo.txt" "suite, SCRAM-SHA-256"
report "$tmp/kgo512.txt" "SASL tests, SCRAM-SHA-512"
echo "compat-secure: failed SASL logins in the agents' logs (TestSCRAMAuthBadCredentials and TestOAuthAuth's expired" \
	"token make them): $(cat "$tmp"/agent-*.log | grep -c 'SASL authentication failed' || true)"
exit $status
