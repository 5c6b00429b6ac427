# Shared helpers for perf/*.sh (sourced, not executed).
# Only processes these scripts start are ever signalled, and only by PID.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

target_dir() {
    local t
    t=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    echo "${t:-$ROOT/target}"
}

build_release() { # packages...
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    (cd "$ROOT" && cargo build --release "${args[@]}" >&2) || die "cargo build --release ${args[*]} failed"
}

find_mosquitto() {
    local m=${MOSQUITTO:-$(command -v mosquitto || true)}
    [[ -n $m ]] || m=/usr/sbin/mosquitto
    [[ -x $m ]] || die "mosquitto not found (apt-get install mosquitto, or MOSQUITTO=/path)"
    echo "$m"
}

# Stop a process we started: SIGTERM, then SIGINT, then SIGKILL, a few seconds apart.
# (ringmq shuts down on SIGINT; under valgrind a process may need the last resort.)
stop_pid() {
    local pid=$1 sig i
    [[ -n $pid ]] || return 0
    for sig in TERM INT KILL; do
        kill -0 "$pid" 2>/dev/null || break
        kill -"$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    done
    { wait "$pid"; } 2>/dev/null || true
}

# Mosquitto config equivalent to ringmq's defaults (anonymous, no persistence, same limits).
write_mosquitto_conf() { # file port
    cat >"$1" <<CONF
listener $2 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_inflight_messages ${INFLIGHT_MAX:-64}
max_queued_messages ${QUEUED_MAX:-1000}
max_packet_size ${PACKET_MAX:-1048576}
max_connections -1
log_type error
log_dest stderr
CONF
    # Started as root, mosquitto drops to user "mosquitto"; stay root so perf/valgrind
    # tooling (callgrind_control) can talk to it.
    if [[ $(id -u) == 0 ]]; then echo "user root" >>"$1"; fi
}

# Results directory and the release load generator, shared by every script:
# sets OUT (absolute, created), T (cargo target dir) and BENCH. Usage: prepare_run profile
prepare_run() {
    OUT=${OUT:-$ROOT/perf/results/$1-$(date +%Y%m%d-%H%M%S)}
    mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
    T=$(target_dir)
    build_release ringmq-bench
    BENCH=$T/release/ringmq-bench
}
