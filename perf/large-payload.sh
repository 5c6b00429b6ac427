#!/usr/bin/env bash
# Large payloads (issue 11): 8 pairs of 16 KB messages at full speed (closed loop, 64 in flight
# per publisher end to end), side by side in alternating runs: ringmq builds, Mosquitto and the
# trivial forwarding relay (bench-harness ringmq-relay, QoS 0 only: the ceiling a minimal
# single-threaded server reaches). Every server on CPU 0, the generator on CPU 1, a fresh
# server per run, stopped by its PID. ringmq runs its default configuration (one shard here,
# under taskset; `durability = "process"`, nothing stored at QoS 0/1 for clean sessions).
#
# Usage:
#   perf/large-payload.sh ROUNDS SERVER...
#     SERVER: a ringmq binary, `mosquitto` or `relay`
#   QOS="0 1"  PAYLOAD=16384  PAIRS=8  INFLIGHT=64  DURATION=8s
# Example:
#   perf/large-payload.sh 3 /tmp/ringmq-old target/release/ringmq mosquitto relay
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROUNDS=${1:?rounds}
shift
(($# > 0)) || die "name at least one server"
QOS=${QOS:-"0 1"}
PAYLOAD=${PAYLOAD:-16384}
PAIRS=${PAIRS:-8}
INFLIGHT=${INFLIGHT:-64}
DURATION=${DURATION:-8s}
PORT=${PORT:-18851}
prepare_run large-payload  # builds ringmq-bench, and with it ringmq-relay
RELAY=$T/release/ringmq-relay
DATA=$OUT/data

start() { # server -> PID in STARTED
    case $1 in
    mosquitto)
        write_mosquitto_conf "$OUT/mosquitto.conf" "$PORT"
        taskset -c 0 "$(find_mosquitto)" -c "$OUT/mosquitto.conf" >/dev/null 2>&1 &
        ;;
    relay) taskset -c 0 "$RELAY" --bind "127.0.0.1:$PORT" >/dev/null 2>&1 & ;;
    *)
        rm -rf "$DATA"
        taskset -c 0 "$1" --bind "127.0.0.1:$PORT" --data-dir "$DATA" --log-level error >/dev/null 2>&1 &
        ;;
    esac
    STARTED=$!
    "$BENCH" probe --port "$PORT" --wait 15s >/dev/null
}

STARTED=""
trap 'stop_pid "$STARTED"' EXIT INT TERM
for q in $QOS; do
    for round in $(seq 1 "$ROUNDS"); do
        i=0
        for server in "$@"; do
            i=$((i + 1))
            [[ $server == relay && $q != 0 ]] && continue
            start "$server"
            json=$OUT/s$i-q$q-$round.json
            taskset -c 1 "$BENCH" pairs --pairs "$PAIRS" --qos "$q" --payload-bytes "$PAYLOAD" \
                --inflight "$INFLIGHT" --duration "$DURATION" --warmup 2s --port "$PORT" \
                --broker-pid "$STARTED" --quiet >"$json" || true
            stop_pid "$STARTED"; STARTED=""
            /usr/bin/python3 - "$json" "$server" "$q" "$PAYLOAD" <<'PY'
import json, sys
try:
    d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
except Exception as e:
    print(f"{sys.argv[2]} qos{sys.argv[3]}: no result ({e})")
    sys.exit(0)
rate = d.get("forwarded_per_s") or 0
cpu = d.get("broker_cpu_pct") or 0
l = d["latency_us"]
gbs = rate * int(sys.argv[4]) / 1e9
us = cpu * 1e4 / rate if rate else 0
print(f"{sys.argv[2]:<28} qos{sys.argv[3]} {rate:>9.0f} msg/s {gbs:5.2f} GB/s cpu={cpu:.1f}% "
      f"us/msg={us:.2f} p50={l['p50']}us p99={l['p99']}us lost={d['lost']}")
PY
        done
    done
done | tee "$OUT/summary.txt"
