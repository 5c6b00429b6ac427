#!/usr/bin/env bash
# Everyday load, two ringmq builds (or ringmq and Mosquitto) under the same open-loop generator:
# broker CPU, p50/p99 and syscalls per message, in alternating runs. Broker on CPU 0 (default
# configuration, so one shard under taskset), generator on CPU 1, every run on a fresh broker
# stopped by its PID.
#
# Usage:
#   perf/everyday-ab.sh OLD NEW [ROUNDS]
#     OLD, NEW: ringmq binaries, or the word `mosquitto` (perf/common.sh's equivalent limits)
#   SCENARIOS="1:30000 0:50000" (QoS:total msg/s, 8 pairs, 64-byte payloads)
#   SYSCALLS=1 also counts syscalls per message with perf's syscall tracepoints (needs perf and
#   tracefs; the count is taken over 4 s of the measured window)
# Example:
#   perf/everyday-ab.sh /tmp/ringmq-unpatched target/release/ringmq 3
set -euo pipefail
source "$(dirname "$0")/common.sh"
A=${1:?old binary or mosquitto}
B=${2:?new binary or mosquitto}
ROUNDS=${3:-3}
SCENARIOS=${SCENARIOS:-"1:30000 0:50000"}
PORT=${PORT:-18850}
prepare_run everyday-ab
DATA=$OUT/data
SYSC=(sendto recvfrom read write epoll_wait epoll_ctl io_uring_enter)

start() { # binary -> PID in STARTED
    if [[ $1 == mosquitto ]]; then
        write_mosquitto_conf "$OUT/mosquitto.conf" "$PORT"
        taskset -c 0 "$(find_mosquitto)" -c "$OUT/mosquitto.conf" >/dev/null 2>&1 &
    else
        rm -rf "$DATA"
        taskset -c 0 "$1" --bind "127.0.0.1:$PORT" --data-dir "$DATA" --log-level error >/dev/null 2>&1 &
    fi
    STARTED=$!
    "$BENCH" probe --port "$PORT" --wait 15s >/dev/null
}

STARTED=""
trap 'stop_pid "$STARTED"' EXIT INT TERM
for sc in $SCENARIOS; do
    q=${sc%%:*} rate=${sc##*:}
    for round in $(seq 1 "$ROUNDS"); do
        for label in a b; do
            bin=$A; [[ $label == b ]] && bin=$B
            start "$bin"
            json=$OUT/$label-q$q-r$rate-$round.json
            taskset -c 1 "$BENCH" pairs --pairs 8 --qos "$q" --rate "$rate" --duration 8s --warmup 2s \
                --port "$PORT" --broker-pid "$STARTED" --quiet >"$json" &
            gen=$!
            calls=""
            if [[ ${SYSCALLS:-0} == 1 ]]; then
                sleep 4
                ev=(); for s in "${SYSC[@]}"; do ev+=(-e "syscalls:sys_enter_$s"); done
                calls=$(perf stat "${ev[@]}" -p "$STARTED" -- sleep 4 2>&1 |
                    awk -v r="$rate" '/syscalls:/ { n = $1; gsub(",", "", n); if (n > 0) { sub("syscalls:sys_enter_", "", $2); printf "%s=%.2f ", $2, n / (4 * r) } }')
            fi
            wait "$gen"
            stop_pid "$STARTED"; STARTED=""
            /usr/bin/python3 - "$json" "$label" "$(basename "$bin")" "$q" "$rate" "$calls" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
l = d["latency_us"]
cpu = d.get("broker_cpu_pct") or 0
print(f"{sys.argv[2]} {sys.argv[3]:<18} qos{sys.argv[4]} {sys.argv[5]}/s cpu={cpu:.1f}% "
      f"us/msg={cpu * 1e4 / float(sys.argv[5]):.1f} p50={l['p50']}us p99={l['p99']}us "
      f"lost={d['lost']} {sys.argv[6]}")
PY
        done
    done
done | tee "$OUT/summary.txt"
