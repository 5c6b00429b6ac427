#!/bin/bash
# A/B of two ringmq builds under the same generator: alternating rounds, broker pinned to CPU 0
# with one shard, generator on CPU 1. Usage: perf/ab-before-after.sh OLD_RINGMQ NEW_RINGMQ
# (for example a release build of an older commit in a git worktree, and target/release/ringmq).
set -u
OLD=${1:?old ringmq binary}
NEW=${2:-target/release/ringmq}
B=target/release/ringmq-bench
for round in 1 2 3; do
  for label in old new; do
    if [ $label = old ]; then BIN=$OLD; else BIN=$NEW; fi
    for sc in "pairs --pairs 10 --qos 1" "fanin --publishers 50 --qos 1 --inflight 16"; do
      taskset -c 0 $BIN --bind 127.0.0.1:18850 --shards 1 --pin false --log-level error & BP=$!
      sleep 0.5
      r=$(taskset -c 1 $B $sc -p 18850 -d 5s -w 1s --broker-pid $BP 2>/dev/null | grep '^{' | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(round(d['forwarded_per_s']), d['lost'], d['broker_cpu_pct'], d['latency_us']['p99'])")
      echo "$label $round ${sc%% *} fwd/lost/cpu/p99us: $r"
      kill -TERM $BP; wait $BP 2>/dev/null
      sleep 1
    done
  done
done
