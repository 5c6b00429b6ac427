#!/usr/bin/env python3
"""Memory per idle plain-TCP connection over time, for more connections than
perf/idle-memory.py opens (it needs three descriptors per client): the broker's RSS delta per
connection 1.5, 6, 12 and 16 s after N idle MQTT 3.1.1 clients connected, beside the
`ringmq_connections_asleep` gauge from /metrics. With the default hibernate_idle_ms (10 s) the
readings before 10 s are awake connections, the later ones sleeping ones.

Usage: perf/idle-memory-plain.py BINARY [CONNECTIONS, default 12000] [extra broker flags...]
Runs one shard with mimalloc's transparent huge pages off; its own broker on free loopback
ports, stopped by PID. Needs an open-files limit above CONNECTIONS + 100.
"""
import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("idle_memory", os.path.join(HERE, "idle-memory.py"))
im = importlib.util.module_from_spec(spec)
spec.loader.exec_module(im)


def asleep(http):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics").read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ringmq_connections_asleep "):
            return int(line.split()[1])
    return None


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 12000
    extra = sys.argv[3:]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    port, http = im.free_port(), im.free_port()
    d = tempfile.mkdtemp(prefix="ringmq-idle-plain-")
    env = dict(os.environ, MIMALLOC_ALLOW_THP="0")
    broker = subprocess.Popen(
        [binary, "--bind", f"127.0.0.1:{port}", "--shards", "1", "--http-bind",
         f"127.0.0.1:{http}", "--data-dir", os.path.join(d, "data"),
         "--log-level", "ringmq::net::dormant=debug,error"] + extra, env=env)
    socks = []
    try:
        time.sleep(0.5)
        for s in im.open_clients(50, port, None, "warm"):
            s.close()
        time.sleep(1.5)
        base = im.rss_bytes(broker.pid)
        socks = im.open_clients(n, port, None, "p")
        t0 = time.time()
        for at in (1.5, 6, 12, 16):
            time.sleep(max(0.0, t0 + at - time.time()))
            per = (im.rss_bytes(broker.pid) - base) / n
            print(f"{at:5.1f} s: {per:,.0f} B per connection, asleep: {asleep(http)}")
    finally:
        for s in socks:
            s.close()
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
