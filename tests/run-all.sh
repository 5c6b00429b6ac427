#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need, checks
# formatting and lints, then runs every test of the workspace (unit, property, integration
# against the real broker on loopback, and the load generator against Mosquitto), and a short
# smoke run of every fuzz target (tests/fuzz-smoke.sh), and the browser tests (tests/browser:
# Playwright driving Debian's Chromium against the broker binary).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# MQTT over WebSocket tests (tests/broker/t17_websocket.rs) drive Eclipse paho for Python, run
# by Debian's /usr/bin/python3 (where apt installs it; a pyenv `python3` on PATH would not see it).
/usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1 || need_apt+=(python3 python3-paho-mqtt)
# Browser tests (tests/browser): Playwright's playwright-core drives Debian's Chromium (a
# Playwright browser download is not possible offline); Node.js runs them.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The Prometheus exposition is checked with the reference parser (src/control/metrics.rs), run
# by Debian's /usr/bin/python3.
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need_apt+=(python3 python3-prometheus-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's package may start a broker on 1883; the tests never use that port.

if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole workspace (cargo prints one per test binary, the last of them
# often a crate's empty doc-test run).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
echo "== broker tests again, idle connections asleep after 100-200 ms (src/net/dormant.rs)"
# Every wait of these tests then also tests waking: deliveries, acknowledgement flows, wills,
# takeover, shutdown and the durable store, through sleeping connections.
# On a failure it prints each failing test's own output (its panic message), not only the tail:
# a tail of 15 lines showed only the end of a backtrace.
log2=$(mktemp)
trap 'rm -f "$log" "$log2"' EXIT
if ! RINGMQ_TEST_HIBERNATE_IDLE_MS=1 cargo test -q -p ringmq --test broker -- \
  t02_subpub t03_qos t05_session t06_will t08_shards t09_overload t10_shutdown t16_ >"$log2" 2>&1; then
  sed -n '/^failures:$/,$p' "$log2" | grep -v '^  *[0-9]*: \|^  *at ' | head -300
  exit 1
fi
tail -3 "$log2"
echo "== browser apps: the committed build (web/*/dist, src/web/*_assets.rs) matches the sources"
for app in chat dashboard; do
  (cd "web/$app" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent >/dev/null)
done
git diff --exit-code --stat -- web src/web || { echo "rebuild web/ and commit its dist/ (see web/README.md)"; exit 1; }
echo "== browser tests (tests/browser: Chromium against target/debug/ringmq)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo build --bin ringmq
(cd tests/browser && RINGMQ_BIN="$PWD/../../target/debug/ringmq" npm test)
echo "== fuzz smoke (every cargo-fuzz target, a few seconds each)"
tests/fuzz-smoke.sh
