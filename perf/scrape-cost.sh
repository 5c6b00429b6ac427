#!/bin/bash
# What scraping the HTTP side costs the data path: QoS 0 pairs throughput with nobody polling,
# and with `curl` fetching /metrics and /api/v1/stats once a second each (Prometheus plus an open
# dashboard). Alternating rounds; the whole broker (its shard and its HTTP thread) pinned to
# CPU 0 with one shard, generator and curl on CPU 1.
# Usage: perf/scrape-cost.sh [ROUNDS] [INTERVAL_S]   (defaults 3 and 1)
set -u
ROUNDS=${1:-3}
EVERY=${2:-1}
BIN=target/release/ringmq
B=target/release/ringmq-bench
PORT=18851
HTTP=18852
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
PW=scrape-cost-pw
echo "$PW" | $BIN --admin-users-file "$D/admin-users" admin add-user bench --password-stdin >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  for mode in quiet scraped; do
    taskset -c 0 $BIN --bind 127.0.0.1:$PORT --http-bind 127.0.0.1:$HTTP \
      --admin-users-file "$D/admin-users" --data-dir "$D/data" --shards 1 --pin false \
      --log-level error & BP=$!
    sleep 0.5
    LP=
    if [ $mode = scraped ]; then
      T=$(curl -s -XPOST "http://127.0.0.1:$HTTP/api/v1/login" \
            -d "{\"username\":\"bench\",\"password\":\"$PW\"}" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
      taskset -c 1 bash -c "while true; do
          curl -s -o /dev/null -w '%{time_total}\n' http://127.0.0.1:$HTTP/metrics >> $D/metrics-times
          curl -s -o /dev/null -w '%{time_total}\n' -H 'Authorization: Bearer $T' \
            http://127.0.0.1:$HTTP/api/v1/stats >> $D/stats-times
          sleep $EVERY
        done" & LP=$!
    fi
    r=$(taskset -c 1 $B pairs --pairs 10 --qos 0 -p $PORT -d 8s -w 2s --broker-pid $BP 2>/dev/null |
        grep '^{' | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(round(d['forwarded_per_s']), d['lost'], d['broker_cpu_pct'], d['latency_us']['p99'])")
    # CPU time (ns, from schedstat) of the HTTP thread and of the shard over the whole run.
    # (thread names are cut to 15 bytes: glommio's shard thread is "ringmq-shard-0-...").
    cpu() { local n=0; for t in /proc/$BP/task/*; do
              case "$(cat $t/comm)" in $1*) n=$(( n + $(cut -d' ' -f1 $t/schedstat) ));; esac
            done; echo $n; }
    echo "$mode $round fwd/lost/cpu/p99us: $r  http-thread-cpu-ms: $(( $(cpu ringmq-http) / 1000000 ))  shard-cpu-ms: $(( $(cpu ringmq-shard-0) / 1000000 ))"
    [ -n "$LP" ] && kill $LP && wait $LP 2>/dev/null
    kill -TERM $BP; wait $BP 2>/dev/null
    sleep 1
  done
done
for f in metrics-times stats-times; do
  [ -f "$D/$f" ] && python3 -c "
import statistics,sys
t=sorted(float(x)*1000 for x in open('$D/$f'))
print('$f: %d requests, median %.2f ms, max %.2f ms' % (len(t), statistics.median(t), t[-1]))"
done
