#!/usr/bin/env bash
# Count the instructions a broker executes per message with valgrind's callgrind. Instruction
# counts do not depend on the machine's speed or load, so they compare builds reliably on any
# machine, VM or CI runner (unlike wall-clock profiles).
#
# The broker runs under callgrind (single shard: valgrind serialises threads anyway); once it
# answers CONNECT its counters are zeroed, ringmq-bench sends a fixed number of messages
# (--count per publisher, max-throughput mode), the counters are dumped, and the broker is
# stopped. Reported: total instructions (Ir) and Ir per delivered message, plus the hottest
# functions (callgrind_annotate).
#
# Usage:
#   perf/callgrind.sh [--broker ringmq|mosquitto] [--messages N] [--out DIR] [-- scenario args]
# Examples:
#   perf/callgrind.sh                               # ringmq, 4 pairs, QoS 1, 5000 msgs each
#   perf/callgrind.sh --broker mosquitto
#   perf/callgrind.sh -- fanout --subscribers 50 --qos 0
#   callgrind_annotate perf/results/callgrind-*/callgrind.out.*.1 | less
#
# Options:
#   --broker ringmq|mosquitto   (default ringmq)
#   --binary PATH               a ringmq binary to count instead of building target/release/ringmq
#                               (to compare builds: run each in turn)
#   --messages N                messages per publisher (default 5000)
#   --port P                    (default 18845)
#   --out DIR                   (default perf/results/callgrind-<time>)
set -euo pipefail
source "$(dirname "$0")/common.sh"

BROKER=ringmq MESSAGES=5000 PORT=18845 OUT="" BINARY=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --broker) BROKER=$2; shift 2 ;;
        --binary) BINARY=$2; shift 2 ;;
        --messages) MESSAGES=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        *) die "unknown option $1 (scenario arguments go after --)" ;;
    esac
done
SCENARIO=("$@")
[[ ${#SCENARIO[@]} -gt 0 ]] || SCENARIO=(pairs --pairs 4 --qos 1)
command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
command -v callgrind_control >/dev/null || die "callgrind_control not found (part of valgrind)"

prepare_run callgrind
if "$BENCH" probe --port "$PORT" >/dev/null 2>&1; then die "port $PORT is taken by another broker"; fi

VG=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" --dump-instr=no)
case $BROKER in
    ringmq)
        if [[ -z $BINARY ]]; then build_release ringmq; BINARY=$T/release/ringmq; fi
        # Long connect timeout: under valgrind everything is ~30x slower.
        "${VG[@]}" "$BINARY" --bind "127.0.0.1:$PORT" --shards 1 --pin false \
            --connect-timeout-ms 600000 --log-level warn >"$OUT/broker.log" 2>&1 &
        ;;
    mosquitto)
        write_mosquitto_conf "$OUT/mosquitto.conf" "$PORT"
        "${VG[@]}" "$(find_mosquitto)" -c "$OUT/mosquitto.conf" >"$OUT/broker.log" 2>&1 &
        ;;
    *) die "--broker must be ringmq or mosquitto" ;;
esac
PID=$!
trap 'stop_pid "$PID"' EXIT INT TERM
"$BENCH" probe --port "$PORT" --wait 120s >/dev/null || { tail "$OUT/broker.log" >&2; die "$BROKER did not start under valgrind"; }

# Count only the workload: zero after start-up, dump after the last message.
callgrind_control --zero "$PID" >/dev/null
"$BENCH" "${SCENARIO[@]}" --port "$PORT" --count "$MESSAGES" --duration 1h --warmup 0s \
    --connect-concurrency 1 --drain 60s --quiet --json "$OUT/load.json" >/dev/null 2>"$OUT/load.err" ||
    die "load failed: $(cat "$OUT/load.err")"
callgrind_control --dump=workload "$PID" >/dev/null
stop_pid "$PID"

DUMP=$(grep -l "^desc: Trigger: .*workload" "$OUT"/callgrind.out.* 2>/dev/null | head -1 || true)
[[ -n $DUMP ]] || DUMP=$(ls -t "$OUT"/callgrind.out.* | head -1)
IR=$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$DUMP" | head -1)
RECEIVED=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"received\"])" "$OUT/load.json")
SENT=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"sent\"])" "$OUT/load.json")
callgrind_annotate --inclusive=no "$DUMP" 2>/dev/null | head -60 >"$OUT/annotate.txt" || true
{
    echo "broker: $BROKER; load: ringmq-bench ${SCENARIO[*]} --count $MESSAGES"
    echo "messages published: $SENT, deliveries received: $RECEIVED"
    echo "instructions (Ir) for the workload: $IR"
    if [[ -n $IR && -n $RECEIVED && $RECEIVED -gt 0 ]]; then
        echo "Ir per delivered message: $((IR / RECEIVED))"
    fi
    echo "profile: $DUMP (callgrind_annotate / kcachegrind); top functions in $OUT/annotate.txt"
} | tee "$OUT/summary.txt"
