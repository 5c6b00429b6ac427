#!/usr/bin/env bash
# Issue 9's side-by-side measurements with Mosquitto, in one command: TLS throughput, TLS
# connection setup rate and memory per idle TLS connection, and the ACL check at 10k rules.
# Each line below is one sidebyside.sh run (ringmq then Mosquitto, fresh brokers, broker on
# --broker-cpus, generator on --gen-cpus, medians of --rounds alternating rounds).
#
# Usage:
#   bench-harness/tls-acl.sh [sidebyside.sh options...]
# Examples:
#   bench-harness/tls-acl.sh                       # 1 shard, broker on CPU 0, generator on CPU 1
#   bench-harness/tls-acl.sh --shards 2            # ringmq's default shard count on 2 vCPUs
#   OUT_DIR=/tmp/x PAIRS=8 CONNS=5000 bench-harness/tls-acl.sh --rounds 5
#
# Environment: OUT_DIR (default bench-harness/results/tls-acl-<time>), PAIRS (8), PAYLOAD (64),
# DURATION (8s), CONNS (5000), CONNECT_CONCURRENCY (64: handshakes in parallel, below
# Mosquitto's listen backlog of 100), ACL_RULES (10000). Every pairs run logs in as user `bench`,
# with and without the ACL, so the only difference between the plain and the ACL runs is the
# acl_file. Results: OUT_DIR/<run>/summary.txt and everything sidebyside.sh writes;
# OUT_DIR/summaries.txt has them all.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
S=$ROOT/bench-harness/sidebyside.sh
OUT_DIR=${OUT_DIR:-$ROOT/bench-harness/results/tls-acl-$(date +%Y%m%d-%H%M%S)}
PAIRS=${PAIRS:-8}
PAYLOAD=${PAYLOAD:-64}
DURATION=${DURATION:-8s}
CONNS=${CONNS:-5000}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-64}
ACL_RULES=${ACL_RULES:-10000}
mkdir -p "$OUT_DIR"

PAIRS_ARGS=(pairs --pairs "$PAIRS" --qos 0 --payload-bytes "$PAYLOAD" --duration "$DURATION" --username bench)
CONNS_ARGS=(conns --connections "$CONNS" --hold 2s --connect-concurrency "$CONNECT_CONCURRENCY")

run() { # name [sidebyside options] -- scenario...
    local name=$1
    shift
    echo "##### $name" >&2
    OUT_DIR="$OUT_DIR/$name" "$S" "$@"
    { echo "##### $name"; cat "$OUT_DIR/$name/summary.txt"; echo; } >>"$OUT_DIR/summaries.txt"
}

# The first run builds (unless given --no-build); the others reuse its binaries.
run pairs-plain "$@" -- "${PAIRS_ARGS[@]}"
run pairs-tls --no-build --tls "$@" -- "${PAIRS_ARGS[@]}"
run pairs-acl --no-build --acl-rules "$ACL_RULES" "$@" -- "${PAIRS_ARGS[@]}"
run conns-plain --no-build "$@" -- "${CONNS_ARGS[@]}"
run conns-tls --no-build --tls "$@" -- "${CONNS_ARGS[@]}"
echo "all summaries: $OUT_DIR/summaries.txt" >&2
