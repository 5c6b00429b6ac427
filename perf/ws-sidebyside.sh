#!/usr/bin/env bash
# MQTT over WebSocket side by side (issue 10): ringmq's `protocol = "ws"` listener against
# Mosquitto's websockets listener, and for reference both over plain TCP, in one run.
#
# Scenarios, each 8 publisher→subscriber pairs, 64-byte payloads, clean sessions (the
# generator's CONNECT always has clean session 1, no --persistent):
#   q0-max    QoS 0 at saturation          q1-max    QoS 1 at saturation
#   q0-rate   QoS 0 open loop at $RATE msg/s in total (latency and broker CPU at a fixed load)
#   q1-rate   QoS 1 open loop at $RATE msg/s in total
# The default rate, 20,000 msg/s, is below every broker's capacity here (Mosquitto's QoS 1
# over TCP saturates near 26,000 msg/s on this 2-core machine): a load, not an overload.
# Brokers, all pinned to CPU 0 with taskset, the generator to CPU 1, each started fresh for
# every run and stopped by PID; per round every scenario runs against each broker in turn
# (ringmq-ws, mosquitto-ws, ringmq-tcp, mosquitto-tcp), rounds repeat that order:
#   ringmq     its defaults (durability "process": clean sessions journal nothing; 64 in
#              flight, 1,000 queued messages, 1 MiB packets), admin HTTP API off. Shards: the
#              default, one per CPU it may run on, which under `taskset -c 0` is 1 (its log
#              says "1 shard(s), pinned").
#   mosquitto  perf/common.sh's equivalent config (max_inflight_messages 64,
#              max_queued_messages 1000, max_packet_size 1048576, set_tcp_nodelay, anonymous,
#              no persistence) plus a websockets listener.
# Usage: perf/ws-sidebyside.sh [ROUNDS]   (from anywhere; builds release binaries)
#   env: DURATION (8s), WARMUP (2s), RATE (20000), SCENARIOS ("q0-max q1-max q0-rate q1-rate"),
#        OUT (results directory), PORT_BASE (18850)
# Output: $OUT/<scenario>.jsonl (one JSON line per run), $OUT/summary.txt (medians per
# scenario, ratios to mosquitto-ws), broker logs and configs.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROUNDS=${1:-3}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
RATE=${RATE:-20000}
read -ra SCENARIOS <<<"${SCENARIOS:-q0-max q1-max q0-rate q1-rate}"
PORT_BASE=${PORT_BASE:-18850}
RINGMQ_PORT=$PORT_BASE
RINGMQ_WS_PORT=$((PORT_BASE + 1))
MOSQ_PORT=$((PORT_BASE + 2))
MOSQ_WS_PORT=$((PORT_BASE + 3))
command -v taskset >/dev/null || die "taskset not found (util-linux)"

prepare_run ws-sidebyside
build_release ringmq
RINGMQ=$T/release/ringmq
MOSQUITTO=$(find_mosquitto)
echo "results in $OUT" >&2

# ringmq: a plain and a ws listener, everything else default. The data directory is the run's
# own (durability process opens its journal there even though clean sessions write nothing).
cat >"$OUT/ringmq.toml" <<CONF
log_level = "warn"
data_dir = "$OUT/ringmq-data"
[[listener]]
bind = "127.0.0.1:$RINGMQ_PORT"
[[listener]]
bind = "127.0.0.1:$RINGMQ_WS_PORT"
protocol = "ws"
CONF
# Mosquitto: its websockets listener needs a plain one beside it ("Unable to start any
# listening sockets" otherwise), and binds 127.0.0.1 only with socket_domain ipv4 (without
# it libwebsockets listens on every address).
write_mosquitto_conf "$OUT/mosquitto.conf" "$MOSQ_PORT"
printf 'listener %s 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n' "$MOSQ_WS_PORT" \
    >>"$OUT/mosquitto.conf"

{
    echo "date: $(date -Is)"
    echo "host: $(uname -a)"
    echo "cpus: $(nproc) online; broker on CPU 0, generator on CPU 1"
    echo "cpu model: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "mosquitto: $("$MOSQUITTO" -h 2>&1 | head -1)"
    echo "ringmq: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (dirty tree)')"
    echo "rounds: $ROUNDS; duration $DURATION after $WARMUP warm-up; rate $RATE msg/s"
} | tee "$OUT/env.txt" >&2

BROKER_PID=""
trap 'stop_pid "$BROKER_PID"' EXIT

start_broker() { # name → BROKER_PID
    local log=$OUT/$1.log
    rm -rf "$OUT/ringmq-data"
    case $1 in
        ringmq) taskset -c 0 "$RINGMQ" --config "$OUT/ringmq.toml" --http-enabled false >>"$log" 2>&1 & ;;
        mosquitto) taskset -c 0 "$MOSQUITTO" -c "$OUT/mosquitto.conf" >>"$log" 2>&1 & ;;
    esac
    BROKER_PID=$!
    local ws_port=$RINGMQ_WS_PORT port=$RINGMQ_PORT
    [[ $1 == mosquitto ]] && ws_port=$MOSQ_WS_PORT port=$MOSQ_PORT
    "$BENCH" probe --port "$port" --wait 10s >/dev/null || die "$1 did not start (see $log)"
    "$BENCH" probe --port "$ws_port" --ws --wait 10s >/dev/null ||
        die "$1's WebSocket listener does not answer (see $log)"
}

run() { # broker transport scenario
    local broker=$1 transport=$2 scenario=$3 port flags=()
    case $broker-$transport in
        ringmq-ws) port=$RINGMQ_WS_PORT flags=(--ws) ;;
        ringmq-tcp) port=$RINGMQ_PORT ;;
        mosquitto-ws) port=$MOSQ_WS_PORT flags=(--ws) ;;
        mosquitto-tcp) port=$MOSQ_PORT ;;
    esac
    case $scenario in
        q0-max) flags+=(-q 0) ;;
        q1-max) flags+=(-q 1) ;;
        q0-rate) flags+=(-q 0 --rate "$RATE") ;;
        q1-rate) flags+=(-q 1 --rate "$RATE") ;;
        *) die "unknown scenario $scenario" ;;
    esac
    start_broker "$broker"
    local threads
    threads=$(ls /proc/"$BROKER_PID"/task | wc -l)
    echo "$broker-$transport $scenario: pid $BROKER_PID, $threads threads" >>"$OUT/brokers.txt"
    taskset -c 1 "$BENCH" pairs --port "$port" "${flags[@]}" --pairs 8 -s 64 \
        -d "$DURATION" -w "$WARMUP" --drain 5s --threads 1 --broker-pid "$BROKER_PID" \
        --label "$broker-$transport" --json "$OUT/$scenario.jsonl" \
        >"$OUT/$broker-$transport-$scenario.out" 2>&1 ||
        echo "run $broker-$transport $scenario exited $?" | tee -a "$OUT/failures.txt" >&2
    stop_pid "$BROKER_PID"
    BROKER_PID=""
    sleep 1
}

for r in $(seq 1 "$ROUNDS"); do
    for scenario in "${SCENARIOS[@]}"; do
        for bt in ringmq:ws mosquitto:ws ringmq:tcp mosquitto:tcp; do
            echo "round $r/$ROUNDS: $scenario ${bt/:/-}" >&2
            run "${bt%%:*}" "${bt##*:}" "$scenario"
        done
    done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt" >&2
for scenario in "${SCENARIOS[@]}"; do
    echo "== $scenario (8 pairs, 64 B, medians of $ROUNDS)"
    "$BENCH" summarize "$OUT/$scenario.jsonl" --baseline mosquitto-ws
    echo
done | tee "$OUT/summary.txt"
