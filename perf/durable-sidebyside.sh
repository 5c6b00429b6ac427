#!/usr/bin/env bash
# Durable QoS 1 side by side: 8 publishers → 1 persistent subscriber (fan-in), 64-byte payloads,
# QoS 1, persistent sessions (--persistent), max throughput. Brokers, each pinned to CPU 0 with
# the generator on CPU 1, rounds alternating:
#   ringmq durability = process (the default), ringmq durability = power, ringmq durability = none,
#   Mosquitto with persistence true (autosave every 1800 s, its default), and Mosquitto with
#   persistence true + autosave_on_changes (a save after every 100 changes).
# Usage: perf/durable-sidebyside.sh [ROUNDS] [SHARDS]   (from the repository root, after
# cargo build --release --workspace). Output: one JSON line per run in $OUT/results.jsonl and a
# median table (ringmq-bench summarize); for ringmq, the store's commit latency histogram from
# /metrics after each run ($OUT/commit-<label>.txt).
# RATE=N (environment): open loop at N msg/s in total instead of max throughput, for the latency
# durability adds below saturation (at saturation a closed loop's latency is its window over its
# throughput, so a slower broker shows a higher p99 whatever its commits cost). MOSQUITTO=0 skips
# Mosquitto (for rates it cannot sustain).
set -euo pipefail
ROUNDS=${1:-3}
SHARDS=${2:-1}
RATE=${RATE:-}
MOSQUITTO=${MOSQUITTO:-1}
LOAD=(-d 10s)
[ -n "$RATE" ] && LOAD=(-d 10s --rate "$RATE")
BIN=target/release/ringmq
BENCH=target/release/ringmq-bench
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
OUT=$(mktemp -d /tmp/ringmq-durable-XXXX)
PORT=18841
HTTP_PORT=18842
echo "results in $OUT"
run() { # label, then the broker command
    local label=$1; shift
    rm -rf "$OUT/data" && mkdir -p "$OUT/data"
    taskset -c 0 "$@" >"$OUT/$label.log" 2>&1 &
    local pid=$!
    "$BENCH" probe --port $PORT --wait 10s >/dev/null
    taskset -c 1 "$BENCH" fanin --port $PORT --publishers 8 --subscribers 1 --persistent \
        -q 1 -s 64 "${LOAD[@]}" -w 2s --drain 5s --broker-pid $pid --label "$label" \
        --json "$OUT/results.jsonl" --quiet || true
    # ringmq: the store's commit latency histogram (cumulative over the run) from /metrics.
    if [ "${label#ringmq}" != "$label" ]; then
        curl -s "http://127.0.0.1:$HTTP_PORT/metrics" \
            | grep '^ringmq_store_commit_latency_seconds' >>"$OUT/commit-$label.txt" || true
        echo "--" >>"$OUT/commit-$label.txt"
    fi
    kill $pid; wait $pid 2>/dev/null || true
}
cat >"$OUT/mosq.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence true
persistence_location $OUT/data/
max_queued_messages 1000
max_inflight_messages 64
CONF
cp "$OUT/mosq.conf" "$OUT/mosq-autosave.conf"
printf 'autosave_on_changes true\nautosave_interval 100\n' >>"$OUT/mosq-autosave.conf"
for r in $(seq 1 "$ROUNDS"); do
    for d in process power none; do
        run "ringmq-$d" "$BIN" --bind 127.0.0.1:$PORT --shards "$SHARDS" --pin false \
            --data-dir "$OUT/data" --durability $d --log-level warn \
            --http-bind 127.0.0.1:$HTTP_PORT
    done
    [ "$MOSQUITTO" = 0 ] && continue
    run mosquitto-persist "$MOSQ" -c "$OUT/mosq.conf"
    run mosquitto-autosave "$MOSQ" -c "$OUT/mosq-autosave.conf"
done
"$BENCH" summarize "$OUT/results.jsonl"
echo "commit latency histograms (cumulative per run): $OUT/commit-ringmq-*.txt"
