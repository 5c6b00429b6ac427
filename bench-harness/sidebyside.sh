#!/usr/bin/env bash
# Run the same ringmq-bench scenario against ringmq and against Eclipse Mosquitto, alternating
# A B A B ..., each broker freshly started and pinned to the same CPU set, the generator pinned
# to the other CPUs; print medians and ratios, and chart the median runs' latency.
#
# Usage:
#   bench-harness/sidebyside.sh [options] -- <scenario> [scenario args...]
# Examples:
#   bench-harness/sidebyside.sh -- pairs --pairs 10 --qos 1 --duration 10s
#   bench-harness/sidebyside.sh --rounds 5 -- fanin --publishers 50 --rate 50000 --duration 20s
#   ROUNDS=3 BROKER_CPUS=0 GEN_CPUS=1 bench-harness/sidebyside.sh -- fanout --subscribers 500
#   # overload (issue 7): both brokers with 1000 queued messages per session
#   bench-harness/sidebyside.sh --queued 1000 -- fanin --publishers 8 --inflight 1000 --qos 1 --filter 't/+' --fail-on-loss
#   bench-harness/sidebyside.sh --queued 1000 --ringmq-arg --slow-subscriber-timeout-s=10 -- \
#       stalled --pairs 4 --stalled-publishers 4 --inflight 1000 --qos 1 --rate 20000 --duration 40s
#   # TLS (issue 9): both brokers get a TLS listener with the same generated certificate
#   bench-harness/sidebyside.sh --tls -- pairs --pairs 8 --qos 0 --duration 8s
#   bench-harness/sidebyside.sh --tls -- conns --connections 5000 --hold 2s
#   # the ACL check: both brokers read the same generated 10,000-rule acl_file
#   bench-harness/sidebyside.sh --acl-rules 10000 -- pairs --pairs 8 --qos 0 --username bench
#   bench-harness/tls-acl.sh    # all of issue 9's side-by-side runs, one command
#
# Options (environment variable in brackets):
#   --rounds N           rounds; each round runs ringmq then mosquitto [ROUNDS, default 3]
#   --broker-cpus LIST   taskset CPU list for the broker under test [BROKER_CPUS, default 0]
#   --gen-cpus LIST      taskset CPU list for the generator [GEN_CPUS, default 1]
#   --shards N           ringmq shards [SHARDS, default: number of CPUs in --broker-cpus]
#   --ringmq-port P      [RINGMQ_PORT, default 18831]
#   --mosquitto-port P   [MOSQUITTO_PORT, default 18832]
#   --out DIR            results directory [OUT_DIR, default bench-harness/results/sidebyside-<time>]
#   --inflight N         outgoing QoS 1/2 window per session, both brokers [INFLIGHT_MAX, 64]
#   --queued N           queued messages per session, both brokers; 0 = unlimited for Mosquitto
#                        and 10,000,000 for ringmq, whose queues are always bounded
#                        [QUEUED_MAX, default 0: Debian's Mosquitto 2.0.11 silently drops QoS 1
#                        messages at fan-in with a finite queue, which would flatter ringmq]
#   --max-packet BYTES   largest packet, both brokers [PACKET_MAX, 1048576]
#   --ringmq-arg ARG     extra ringmq command-line argument, repeatable (e.g.
#                        --ringmq-arg --slow-subscriber-timeout-s=10) [RINGMQ_ARGS, space-separated]
#   --mosquitto-conf L   extra mosquitto.conf line, repeatable [MOSQUITTO_CONF, newline-separated]
#   --tls                add a TLS listener to both brokers (the same certificate: a test CA and a
#                        P-256 server certificate for 127.0.0.1/localhost, generated with openssl
#                        into DIR/tls/) and run the scenario against it with --tls-ca [TLS=1]
#   --ringmq-tls-port P  [RINGMQ_TLS_PORT, default ringmq port + 10]
#   --mosquitto-tls-port P [MOSQUITTO_TLS_PORT, default mosquitto port + 10]
#   --acl-rules N        give both brokers the same acl_file of N generated rules (DIR/acl):
#                        N - 1 rules no run topic matches, then `topic readwrite bench/#`, all for
#                        the --acl-user; the scenario must log in as that user (--username)
#                        [ACL_RULES, default 0: no acl_file]
#   --acl-user NAME      [ACL_USER, default bench]
#   --acl-allow-first    put the allowing rule first instead of last (Mosquitto's best case)
#                        [ACL_ALLOW_FIRST=1]
#   --mosquitto-only     skip ringmq (e.g. while it does not build yet)
#   --no-build           use existing release binaries
#   --pause SECONDS      pause between runs so the machine settles [PAUSE, default 2]
#
# Output: DIR/<label>-<scenario>-<time>-<run>.{json,hgrm} per run, DIR/env.txt (machine,
# versions, commands), DIR/summary.txt, DIR/latency.svg. Only broker processes this script
# started are ever killed, by PID. Exit status 3 when a run lost messages the broker had
# acknowledged and the scenario was given --fail-on-loss (every round still runs).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
BROKER_CPUS=${BROKER_CPUS:-0}
GEN_CPUS=${GEN_CPUS:-1}
SHARDS=${SHARDS:-}
RINGMQ_PORT=${RINGMQ_PORT:-18831}
MOSQUITTO_PORT=${MOSQUITTO_PORT:-18832}
OUT_DIR=${OUT_DIR:-}
INFLIGHT_MAX=${INFLIGHT_MAX:-64}
QUEUED_MAX=${QUEUED_MAX:-0}
PACKET_MAX=${PACKET_MAX:-1048576}
PAUSE=${PAUSE:-2}
MOSQUITTO_ONLY=${MOSQUITTO_ONLY:-0}
TLS=${TLS:-0}
RINGMQ_TLS_PORT=${RINGMQ_TLS_PORT:-}
MOSQUITTO_TLS_PORT=${MOSQUITTO_TLS_PORT:-}
ACL_RULES=${ACL_RULES:-0}
ACL_USER=${ACL_USER:-bench}
ACL_ALLOW_FIRST=${ACL_ALLOW_FIRST:-0}
read -ra RINGMQ_EXTRA <<<"${RINGMQ_ARGS:-}"
MOSQUITTO_EXTRA=${MOSQUITTO_CONF:-}
BUILD=1

die() { echo "sidebyside: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --broker-cpus) BROKER_CPUS=$2; shift 2 ;;
        --gen-cpus) GEN_CPUS=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --ringmq-port) RINGMQ_PORT=$2; shift 2 ;;
        --mosquitto-port) MOSQUITTO_PORT=$2; shift 2 ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --inflight) INFLIGHT_MAX=$2; shift 2 ;;
        --queued) QUEUED_MAX=$2; shift 2 ;;
        --max-packet) PACKET_MAX=$2; shift 2 ;;
        --pause) PAUSE=$2; shift 2 ;;
        --ringmq-arg) RINGMQ_EXTRA+=("$2"); shift 2 ;;
        --mosquitto-conf) MOSQUITTO_EXTRA+=$'\n'"$2"; shift 2 ;;
        --mosquitto-only) MOSQUITTO_ONLY=1; shift ;;
        --tls) TLS=1; shift ;;
        --ringmq-tls-port) RINGMQ_TLS_PORT=$2; shift 2 ;;
        --mosquitto-tls-port) MOSQUITTO_TLS_PORT=$2; shift 2 ;;
        --acl-rules) ACL_RULES=$2; shift 2 ;;
        --acl-user) ACL_USER=$2; shift 2 ;;
        --acl-allow-first) ACL_ALLOW_FIRST=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[[ $# -ge 1 ]] || die "no scenario given; try: $0 -- pairs --pairs 10 --qos 1"
SCENARIO=("$@")
case "${SCENARIO[0]}" in
    pairs|fanin|fanout|wildcard|conns|stalled) ;;
    *) die "unknown scenario '${SCENARIO[0]}' (pairs, fanin, fanout, wildcard, conns, stalled)" ;;
esac
for a in "${SCENARIO[@]}"; do
    case "$a" in
        --port|-p|--host|--broker-pid|--label|--out-dir|--json|--hgrm|--tls|--tls-ca|--tls-server-name)
            die "do not pass $a: the script sets it for each broker" ;;
    esac
done
RINGMQ_TLS_PORT=${RINGMQ_TLS_PORT:-$((RINGMQ_PORT + 10))}
MOSQUITTO_TLS_PORT=${MOSQUITTO_TLS_PORT:-$((MOSQUITTO_PORT + 10))}
if [[ $ACL_RULES -gt 0 ]]; then
    user_given=0
    for ((i = 1; i < ${#SCENARIO[@]}; i++)); do
        case "${SCENARIO[i]}" in
            --username|-u) [[ ${SCENARIO[i + 1]:-} == "$ACL_USER" ]] && user_given=1 ;;
            --username=*) [[ ${SCENARIO[i]#--username=} == "$ACL_USER" ]] && user_given=1 ;;
        esac
    done
    [[ $user_given == 1 ]] || die "--acl-rules: the ACL allows only user '$ACL_USER'; add --username $ACL_USER to the scenario (and to the run without ACL you compare with)"
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT_DIR=${OUT_DIR:-$ROOT/bench-harness/results/sidebyside-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || true)}
[[ -n "$MOSQUITTO" ]] || MOSQUITTO=/usr/sbin/mosquitto
[[ -x "$MOSQUITTO" ]] || die "mosquitto not found (apt-get install mosquitto, or set MOSQUITTO=/path)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"

# CPU sets: count CPUs in a taskset list like "0", "0-3", "0,2,4-5".
count_cpus() {
    local n=0 part lo hi
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then lo=${part%-*}; hi=${part#*-}; n=$((n + hi - lo + 1)); else n=$((n + 1)); fi
    done
    echo "$n"
}
expand_cpus() {
    local part lo hi i
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then lo=${part%-*}; hi=${part#*-}; for ((i = lo; i <= hi; i++)); do echo "$i"; done; else echo "$part"; fi
    done
}
SHARDS=${SHARDS:-$(count_cpus "$BROKER_CPUS")}
if comm -12 <(expand_cpus "$BROKER_CPUS" | sort) <(expand_cpus "$GEN_CPUS" | sort) | grep -q .; then
    echo "sidebyside: WARNING: broker CPUs ($BROKER_CPUS) and generator CPUs ($GEN_CPUS) overlap; results will mix their costs" >&2
fi

# Build.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
BENCH=$TARGET_DIR/release/ringmq-bench
RINGMQ=$TARGET_DIR/release/ringmq
if [[ $BUILD == 1 ]]; then
    echo "building ringmq-bench (release)..." >&2
    cargo build --release -p ringmq-bench >&2 || die "ringmq-bench failed to build"
    if [[ $MOSQUITTO_ONLY != 1 ]]; then
        echo "building ringmq (release)..." >&2
        if ! cargo build --release -p ringmq >&2; then
            die "ringmq FAILED TO BUILD (see the errors above). Use --mosquitto-only to measure Mosquitto alone."
        fi
    fi
fi
[[ -x $BENCH ]] || die "$BENCH missing (drop --no-build)"
if [[ $MOSQUITTO_ONLY != 1 && ! -x $RINGMQ ]]; then
    die "$RINGMQ missing: ringmq was not built. Use --mosquitto-only to measure Mosquitto alone."
fi

# TLS: one test CA and one server certificate (P-256, for 127.0.0.1 and localhost), the same
# files for both brokers. Private keys stay in the results directory of this run.
TLS_DIR=$OUT_DIR/tls
RINGMQ_TLS_CONF=""
MOSQUITTO_TLS_CONF=""
if [[ $TLS == 1 ]]; then
    command -v openssl >/dev/null || die "--tls needs openssl to generate the test certificate"
    mkdir -p "$TLS_DIR"
    (
        cd "$TLS_DIR"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -keyout ca.key -out ca.pem -subj /CN=ringmq-bench-test-ca \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.csr -subj /CN=localhost
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out server.pem
        rm -f server.csr ca.srl
        # Mosquitto started as root drops to user mosquitto before it reads certfile/keyfile:
        # the throwaway test key must be readable by it.
        chmod 644 server.key
    ) >"$OUT_DIR/openssl.log" 2>&1 || { cat "$OUT_DIR/openssl.log" >&2; die "generating the test certificate failed"; }
    RINGMQ_TLS_CONF=$(printf '[[listener]]\nbind = "127.0.0.1:%s"\nprotocol = "mqtts"\ncertfile = "%s"\nkeyfile = "%s"\n' \
        "$RINGMQ_TLS_PORT" "$TLS_DIR/server.pem" "$TLS_DIR/server.key")
    MOSQUITTO_TLS_CONF=$(printf 'listener %s 127.0.0.1\ncertfile %s\nkeyfile %s\n' \
        "$MOSQUITTO_TLS_PORT" "$TLS_DIR/server.pem" "$TLS_DIR/server.key")
fi

# ACL: N - 1 rules for the user that no run topic matches (shaped like the ACL micro-benchmark:
# per site 90 % exact, 8 % with +, 2 % with #), then the one rule that allows the run's topics,
# last: Mosquitto walks a user's rules in file order, ringmq looks them up in a trie.
RINGMQ_ACL_CONF=""
MOSQUITTO_ACL_CONF=""
if [[ $ACL_RULES -gt 0 ]]; then
    {
        echo "# Written by sidebyside.sh: $ACL_RULES rules for user $ACL_USER, the allowing one $([[ $ACL_ALLOW_FIRST == 1 ]] && echo first || echo last)."
        echo "user $ACL_USER"
        [[ $ACL_ALLOW_FIRST == 1 ]] && echo "topic readwrite bench/#"
        for ((i = 0; i < ACL_RULES - 1; i++)); do
            s=$((i / 100)) d=$((i % 100))
            case $((i % 50)) in
                0) echo "topic readwrite site/$s/device/$d/#" ;;
                1|2|3|4) echo "topic readwrite site/$s/+/$d/temp" ;;
                *) echo "topic readwrite site/$s/device/$d/temp" ;;
            esac
        done
        [[ $ACL_ALLOW_FIRST == 1 ]] || echo "topic readwrite bench/#"
    } >"$OUT_DIR/acl"
    RINGMQ_ACL_CONF="acl_file = \"$OUT_DIR/acl\""
    MOSQUITTO_ACL_CONF="acl_file $OUT_DIR/acl"
fi

# Equivalent broker configurations: anonymous, no persistence, the same per-session limits.
RINGMQ_QUEUED_MAX=$QUEUED_MAX
[[ $QUEUED_MAX == 0 ]] && RINGMQ_QUEUED_MAX=10000000
cat >"$OUT_DIR/mosquitto.conf" <<EOF
# Written by sidebyside.sh: the same limits as ringmq.toml beside it.
listener $MOSQUITTO_PORT 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages $INFLIGHT_MAX
max_queued_messages $QUEUED_MAX
max_packet_size $PACKET_MAX
max_connections -1
memory_limit 0
log_type error
log_type warning
log_dest stderr
$MOSQUITTO_ACL_CONF
$MOSQUITTO_TLS_CONF
# Extra lines (--mosquitto-conf):
$MOSQUITTO_EXTRA
EOF
cat >"$OUT_DIR/ringmq.toml" <<EOF
# Written by sidebyside.sh: the same limits as mosquitto.conf beside it. pin = false because
# taskset confines the process; pinning shard i to CPU i could escape the CPU set.
bind = "127.0.0.1:$RINGMQ_PORT"
shards = $SHARDS
pin = false
packet_bytes_max = $PACKET_MAX
inflight_max = $INFLIGHT_MAX
queued_messages_max = $RINGMQ_QUEUED_MAX
log_level = "warn"
# The default durability ("process"), in a directory of the run's own, emptied per start.
# (Before the tables below: a key after [[listener]] would belong to it.)
data_dir = "$OUT_DIR/ringmq-data"
$RINGMQ_ACL_CONF
$RINGMQ_TLS_CONF
EOF

{
    echo "date: $(date -Is)"
    echo "host: $(uname -a)"
    echo "cpus: $(nproc) online; broker CPUs $BROKER_CPUS (ringmq shards $SHARDS); generator CPUs $GEN_CPUS"
    echo "cpu model: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "governor: $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo n/a)"
    echo "mosquitto: $("$MOSQUITTO" -h 2>&1 | head -1)"
    echo "ringmq: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty tree)')"
    echo "rounds: $ROUNDS (ringmq then mosquitto each round)"
    echo "scenario: ringmq-bench ${SCENARIO[*]}"
    echo "extra ringmq args: ${RINGMQ_EXTRA[*]:-none}; extra mosquitto.conf lines: ${MOSQUITTO_EXTRA:-none}"
    echo "tls: $([[ $TLS == 1 ]] && echo "yes, ports ringmq $RINGMQ_TLS_PORT / mosquitto $MOSQUITTO_TLS_PORT, $(openssl version 2>/dev/null)" || echo no)"
    echo "acl: $([[ $ACL_RULES -gt 0 ]] && echo "$ACL_RULES rules for user $ACL_USER ($OUT_DIR/acl)" || echo none)"
    echo "sysctl: somaxconn=$(cat /proc/sys/net/core/somaxconn) ip_local_port_range=$(tr '\t' ' ' </proc/sys/net/ipv4/ip_local_port_range) nofile=$(ulimit -n)"
} >"$OUT_DIR/env.txt"
cat "$OUT_DIR/env.txt" >&2

BROKER_PID=""
cleanup() {
    if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    BROKER_PID=""
}
trap cleanup EXIT INT TERM

port_busy() { "$BENCH" probe --port "$1" --wait 0s >/dev/null 2>&1; }

start_broker() { # name port log
    local name=$1 port=$2 log=$3
    if port_busy "$port"; then
        die "port $port already has an MQTT broker listening (not one we started); choose another with --${name}-port"
    fi
    case $name in
        ringmq) rm -rf -- "${OUT_DIR:?}/ringmq-data"
            taskset -c "$BROKER_CPUS" "$RINGMQ" --config "$OUT_DIR/ringmq.toml" --bind "127.0.0.1:$port" --shards "$SHARDS" ${RINGMQ_EXTRA[@]+"${RINGMQ_EXTRA[@]}"} >"$log" 2>&1 &
            ;;
        mosquitto) taskset -c "$BROKER_CPUS" "$MOSQUITTO" -c "$OUT_DIR/mosquitto.conf" >"$log" 2>&1 &
            ;;
    esac
    BROKER_PID=$!
    if ! "$BENCH" probe --port "$port" --wait 10s >/dev/null 2>&1; then
        echo "sidebyside: $name FAILED TO START on port $port (pid $BROKER_PID). Last lines of $log:" >&2
        tail -n 20 "$log" >&2 || true
        cleanup
        return 1
    fi
    if [[ $TLS == 1 ]]; then
        local tls_port=$RINGMQ_TLS_PORT
        [[ $name == mosquitto ]] && tls_port=$MOSQUITTO_TLS_PORT
        # The probe's line names the negotiated TLS version and cipher suite.
        if ! "$BENCH" probe --port "$tls_port" --tls-ca "$TLS_DIR/ca.pem" --wait 10s >>"$OUT_DIR/$name-tls-probe.txt" 2>&1; then
            echo "sidebyside: $name's TLS listener on port $tls_port does not answer:" >&2
            tail -n 5 "$OUT_DIR/$name-tls-probe.txt" "$log" >&2 || true
            cleanup
            return 1
        fi
    fi
}

run_one() { # name port round
    local name=$1 port=$2 round=$3
    local log="$OUT_DIR/$name-round$round.log"
    echo "=== round $round/$ROUNDS: $name ===" >&2
    if ! start_broker "$name" "$port" "$log"; then
        [[ $name == ringmq ]] && die "ringmq did not start; see $log"
        die "$name did not start; see $log"
    fi
    local rc=0 target=(--port "$port")
    if [[ $TLS == 1 ]]; then
        target=(--port "$RINGMQ_TLS_PORT" --tls-ca "$TLS_DIR/ca.pem")
        [[ $name == mosquitto ]] && target=(--port "$MOSQUITTO_TLS_PORT" --tls-ca "$TLS_DIR/ca.pem")
    fi
    taskset -c "$GEN_CPUS" "$BENCH" "${SCENARIO[@]}" "${target[@]}" --label "$name" \
        --broker-pid "$BROKER_PID" --out-dir "$OUT_DIR" >"$OUT_DIR/$name-round$round.out" \
        2>"$OUT_DIR/$name-round$round.err" || rc=$?
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        echo "sidebyside: WARNING: $name (pid $BROKER_PID) died during round $round; see $log" >&2
    fi
    cleanup
    if [[ $rc == 3 ]]; then
        # --fail-on-loss: the run finished, and the broker lost messages it had acknowledged.
        LOSS_RUNS+=("$name round $round")
        echo "sidebyside: LOSS: $name lost acknowledged messages in round $round" >&2
    elif [[ $rc != 0 ]]; then
        echo "sidebyside: WARNING: generator failed against $name in round $round:" >&2
        cat "$OUT_DIR/$name-round$round.err" >&2
    fi
    if [[ $rc == 0 || $rc == 3 ]]; then
        # One-line progress: forwarded msgs/s, p99 and acknowledged-but-lost messages (the
        # first lost_acked in the line is the run's total).
        sed -n 's/.*"forwarded_per_s":\([0-9.]*\).*"latency_us":{[^}]*"p99":\([0-9]*\).*/  forwarded \1 msg\/s, p99 \2 us/p' \
            "$OUT_DIR/$name-round$round.out" >&2
        grep -o '"lost_acked":[0-9]*' "$OUT_DIR/$name-round$round.out" | head -1 | sed 's/.*:/  lost after acknowledgement: /' >&2 || true
    fi
    sleep "$PAUSE"
}

LOSS_RUNS=()
BROKERS=(ringmq mosquitto)
[[ $MOSQUITTO_ONLY == 1 ]] && BROKERS=(mosquitto)
for ((r = 1; r <= ROUNDS; r++)); do
    for b in "${BROKERS[@]}"; do
        case $b in
            ringmq) run_one ringmq "$RINGMQ_PORT" "$r" ;;
            mosquitto) run_one mosquitto "$MOSQUITTO_PORT" "$r" ;;
        esac
    done
done

echo >&2
{
    echo "ringmq-bench ${SCENARIO[*]}"
    echo "medians over $ROUNDS rounds; broker CPUs $BROKER_CPUS, generator CPUs $GEN_CPUS"
    "$BENCH" summarize "$OUT_DIR" --baseline mosquitto
} | tee "$OUT_DIR/summary.txt"

# Chart the median run of each broker.
mapfile -t MEDIANS < <("$BENCH" summarize "$OUT_DIR" --median-hgrm)
if [[ ${#MEDIANS[@]} -gt 0 ]]; then
    labels=() files=()
    for line in "${MEDIANS[@]}"; do
        labels+=("${line%%$'\t'*}")
        files+=("${line#*$'\t'}")
    done
    "$BENCH" compare "${files[@]}" --labels "$(IFS=,; echo "${labels[*]}")" \
        --title "ringmq-bench ${SCENARIO[*]} (median runs)" -o "$OUT_DIR/latency.svg" | tee -a "$OUT_DIR/summary.txt"
fi
echo "results in $OUT_DIR" >&2
if [[ ${#LOSS_RUNS[@]} -gt 0 ]]; then
    echo "sidebyside: LOSS of acknowledged messages in: ${LOSS_RUNS[*]}" | tee -a "$OUT_DIR/summary.txt" >&2
    exit 3
fi
