#!/usr/bin/env bash
# Broker CPU per connection over a whole connection's life: N connects (64 in parallel), a hold,
# the closes, and 3 s for the broker to finish what the closes left it. Read from
# /proc/PID/stat (user + system ticks), so it counts what `conns` alone does not: the closes.
# Broker on CPU 0, generator on CPU 1, a fresh broker per run, servers alternating per round.
#
# Usage: perf/conn-lifecycle-cpu.sh ROUNDS N SERVER...   (SERVER: mosquitto or a ringmq binary)
# Example: perf/conn-lifecycle-cpu.sh 4 15000 mosquitto /tmp/ringmq-before target/release/ringmq
set -euo pipefail
source "$(dirname "$0")/common.sh"
[[ $# -ge 3 ]] || die "usage: $0 ROUNDS N SERVER..."
ROUNDS=$1 N=$2; shift 2
PORT=${PORT:-18867}
# Mosquitto needs a descriptor per connection, like ringmq (which raises its own limit).
ulimit -n "$(ulimit -Hn)"
prepare_run conn-lifecycle
write_mosquitto_conf "$OUT/mosquitto.conf" "$PORT"
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
for _ in $(seq 1 "$ROUNDS"); do
    for server in "$@"; do
        rm -rf "$OUT/data"
        if [[ $server == mosquitto ]]; then
            taskset -c 0 "$(find_mosquitto)" -c "$OUT/mosquitto.conf" >/dev/null 2>&1 &
        else
            taskset -c 0 "$server" --shards 1 --bind "127.0.0.1:$PORT" --data-dir "$OUT/data" \
                --log-level error >/dev/null 2>&1 &
        fi
        PID=$!
        "$BENCH" probe --port "$PORT" --wait 15s >/dev/null
        c0=$(ticks "$PID")
        out=$(taskset -c 1 "$BENCH" conns --connections "$N" --hold 1s --connect-concurrency 64 \
            --port "$PORT" --quiet | tail -1)
        sleep 3
        c1=$(ticks "$PID")
        stop_pid "$PID"
        rate=$(echo "$out" | python3 -c 'import json,sys; c=json.loads(sys.stdin.read())["conns"]; print(int(c["conns_per_s"]), c["succeeded"])')
        echo "$(basename "$server") cpu_us_per_conn $(( (c1 - c0) * 1000000 / HZ / N )) conn/s,succeeded $rate" | tee -a "$OUT/summary.txt"
    done
done
