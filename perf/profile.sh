#!/usr/bin/env bash
# Profile a broker with `perf record -g` while ringmq-bench loads it; write a report and a flame
# graph (folded stacks always; an SVG when inferno or FlameGraph is installed).
#
# Usage:
#   perf/profile.sh [options] [-- <ringmq-bench scenario args>]
# Examples:
#   perf/profile.sh                                   # ringmq, pairs --pairs 10 --qos 1
#   perf/profile.sh --broker mosquitto -- fanout --subscribers 200
#   perf/profile.sh --pid 4242 --port 1883 -- pairs --rate 50000
#
# Options:
#   --broker ringmq|mosquitto  broker to start (default ringmq)
#   --pid PID                  profile an already running broker instead (give --port too)
#   --port P                   broker port (default 18840)
#   --shards N                 ringmq shards (default: CPUs in --broker-cpus)
#   --seconds S                profiling length (default 10)
#   --freq HZ                  sampling frequency (default 999)
#   --call-graph MODE          dwarf (default; Rust release builds have no frame pointers),
#                              fp, or lbr
#   --broker-cpus LIST         taskset for the broker (default 0)
#   --gen-cpus LIST            taskset for the generator (default 1)
#   --out DIR                  output directory (default perf/results/profile-<time>)
set -euo pipefail
source "$(dirname "$0")/common.sh"

BROKER=ringmq PID="" PORT=18840 SHARDS="" SECONDS_=10 FREQ=999 CALLGRAPH=dwarf
BROKER_CPUS=0 GEN_CPUS=1 OUT=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --broker) BROKER=$2; shift 2 ;;
        --pid) PID=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --seconds) SECONDS_=$2; shift 2 ;;
        --freq) FREQ=$2; shift 2 ;;
        --call-graph) CALLGRAPH=$2; shift 2 ;;
        --broker-cpus) BROKER_CPUS=$2; shift 2 ;;
        --gen-cpus) GEN_CPUS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        *) die "unknown option $1 (scenario arguments go after --)" ;;
    esac
done
SCENARIO=("$@")
[[ ${#SCENARIO[@]} -gt 0 ]] || SCENARIO=(pairs --pairs 10 --qos 1)
command -v perf >/dev/null || die "perf not found (apt-get install linux-perf); perf/callgrind.sh works without it"

prepare_run profile

STARTED=""
trap 'stop_pid "$STARTED"' EXIT INT TERM
if [[ -z $PID ]]; then
    if "$BENCH" probe --port "$PORT" >/dev/null 2>&1; then die "port $PORT is taken by another broker"; fi
    case $BROKER in
        ringmq)
            build_release ringmq
            SHARDS=${SHARDS:-$(taskset -c "$BROKER_CPUS" nproc)}
            taskset -c "$BROKER_CPUS" "$T/release/ringmq" --bind "127.0.0.1:$PORT" --shards "$SHARDS" \
                --pin false --log-level warn >"$OUT/broker.log" 2>&1 &
            ;;
        mosquitto)
            write_mosquitto_conf "$OUT/mosquitto.conf" "$PORT"
            taskset -c "$BROKER_CPUS" "$(find_mosquitto)" -c "$OUT/mosquitto.conf" >"$OUT/broker.log" 2>&1 &
            ;;
        *) die "--broker must be ringmq or mosquitto" ;;
    esac
    PID=$!
    STARTED=$PID
    "$BENCH" probe --port "$PORT" --wait 10s >/dev/null || { tail "$OUT/broker.log" >&2; die "$BROKER failed to start"; }
fi

# Hardware cycles are often unavailable in VMs; the cpu-clock software event always works.
EVENT=cycles
if perf stat -e cycles true 2>&1 | grep -q "not supported"; then EVENT=cpu-clock; fi

WARMUP=2
echo "load: ringmq-bench ${SCENARIO[*]} (generator CPUs $GEN_CPUS); profiling pid $PID for ${SECONDS_}s, event $EVENT" >&2
taskset -c "$GEN_CPUS" "$BENCH" "${SCENARIO[@]}" --port "$PORT" --broker-pid "$PID" \
    --warmup "${WARMUP}s" --duration "$((SECONDS_ + 2))s" --quiet --json "$OUT/load.json" >/dev/null 2>"$OUT/load.err" &
GEN=$!
sleep $((WARMUP + 1))
perf record -e "$EVENT" -F "$FREQ" -g --call-graph "$CALLGRAPH" -p "$PID" -o "$OUT/perf.data" \
    -- sleep "$SECONDS_" 2>"$OUT/perf-record.log" || die "perf record failed: $(tail -3 "$OUT/perf-record.log")"
wait "$GEN" || echo "warning: the load generator failed: $(cat "$OUT/load.err")" >&2
stop_pid "$STARTED"; STARTED=""

perf report -i "$OUT/perf.data" --stdio --no-children --percent-limit 0.5 --sort dso,sym -g none \
    >"$OUT/report.txt" 2>/dev/null || true
perf report -i "$OUT/perf.data" --stdio --children --percent-limit 2 \
    >"$OUT/report-callers.txt" 2>/dev/null || true
perf script -i "$OUT/perf.data" 2>/dev/null >"$OUT/perf.script"
if command -v inferno-collapse-perf >/dev/null; then
    inferno-collapse-perf <"$OUT/perf.script" >"$OUT/stacks.folded"
elif command -v stackcollapse-perf.pl >/dev/null; then
    stackcollapse-perf.pl <"$OUT/perf.script" >"$OUT/stacks.folded"
else
    awk -f "$(dirname "$0")/stackcollapse.awk" "$OUT/perf.script" | sort >"$OUT/stacks.folded"
fi
if command -v inferno-flamegraph >/dev/null; then
    inferno-flamegraph --title "$BROKER: ringmq-bench ${SCENARIO[*]}" <"$OUT/stacks.folded" >"$OUT/flamegraph.svg"
elif command -v flamegraph.pl >/dev/null; then
    flamegraph.pl --title "$BROKER: ringmq-bench ${SCENARIO[*]}" "$OUT/stacks.folded" >"$OUT/flamegraph.svg"
else
    echo "no flame graph renderer: 'cargo install inferno' then inferno-flamegraph < $OUT/stacks.folded > flamegraph.svg (or load stacks.folded in speedscope.app)" >&2
fi
echo "top of the profile ($OUT/report.txt):" >&2
grep -E '^ +[0-9]' "$OUT/report.txt" | head -25 >&2 || true
if [[ -s $OUT/load.json ]]; then
    sed -n 's/.*"forwarded_per_s":\([0-9.]*\).*/load: forwarded \1 msg\/s/p' "$OUT/load.json" >&2
fi
echo "results in $OUT" >&2
