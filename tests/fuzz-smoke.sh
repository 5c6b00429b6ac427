#!/usr/bin/env bash
# A short smoke run of every cargo-fuzz target (decoder, engine, config, auth files, the
# WebSocket frame decoder and handshake parser, the store's record decoder and loader): a few
# seconds each, enough to catch a target
# that no longer builds or a shallow crash. Long runs are for people: see fuzz/README.md.
# libFuzzer needs nightly features; the one stable toolchain here provides them with
# RUSTC_BOOTSTRAP=1 (only for this out-of-workspace crate).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${FUZZ_SMOKE_SECONDS:-15}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build 2>&1 | tail -1
for target in $(cargo fuzz list); do
  echo "== fuzz smoke: $target (${SECONDS_EACH}s)"
  mkdir -p "corpus/$target"
  cargo fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -max_len=4096 -rss_limit_mb=2048 \
    2>&1 | grep -E "^(#[0-9]+\s+DONE|Done|==[0-9]+==ERROR|SUMMARY)|panicked" || true
  # libFuzzer exits non-zero on a crash and leaves the input in artifacts/.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz smoke: $target crashed; inputs in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
