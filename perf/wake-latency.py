#!/usr/bin/env python3
"""What waking a sleeping connection costs (hibernate_idle_ms, src/net/dormant.rs): the time from
a publisher's send to a subscriber's receipt when the subscriber sleeps, against the same
subscriber awake a moment later. N subscribers (MQTT 3.1.1, QoS 0, a topic each) and one
publisher on raw sockets; after they all sleep (checked on /metrics), one message to each
subscriber in turn, then the same again while they are awake.

Usage: perf/wake-latency.py [--binary target/release/ringmq] [--subscribers 200] [--idle-ms 2000]
Starts its own broker (1 shard, taskset CPU 0 if available) on free loopback ports, stops it
by PID.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import importlib.util

# The helpers of perf/idle-memory-plain.py (which loads perf/idle-memory.py's).
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "idle_memory_plain", os.path.join(HERE, "idle-memory-plain.py"))
imp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(imp)
free_port, asleep = imp.im.free_port, imp.asleep


def field(b):
    return len(b).to_bytes(2, "big") + b


def frame(first, body):
    n, enc = len(body), b""
    while True:
        d, n = n % 128, n // 128
        enc += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return bytes([first]) + enc + body


def read_packet(s):
    head = s.recv(1)
    if not head:
        raise EOFError
    mult, n = 1, 0
    while True:
        d = s.recv(1)[0]
        n += (d & 127) * mult
        mult *= 128
        if d < 128:
            break
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return head[0], body


def client(port, cid):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(frame(0x10, field(b"MQTT") + bytes([4, 2]) + (600).to_bytes(2, "big") + field(cid)))
    assert read_packet(s)[0] == 0x20
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/ringmq")
    ap.add_argument("--subscribers", type=int, default=200)
    ap.add_argument("--idle-ms", type=int, default=2000)
    a = ap.parse_args()
    port, http = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="ringmq-wake-")
    cmd = [a.binary, "--bind", f"127.0.0.1:{port}", "--shards", "1", "--http-bind",
           f"127.0.0.1:{http}", "--data-dir", f"{d}/data", "--log-level", "error",
           "--hibernate-idle-ms", str(a.idle_ms)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    broker = subprocess.Popen(cmd)
    try:
        time.sleep(0.5)
        subs = []
        for i in range(a.subscribers):
            s = client(port, f"wake-sub-{i}".encode())
            s.sendall(frame(0x82, (1).to_bytes(2, "big") + field(f"w/{i}".encode()) + b"\x00"))
            assert read_packet(s)[0] == 0x90
            subs.append(s)
        pub = client(port, b"wake-pub")
        deadline = time.time() + 4 * a.idle_ms / 1000 + 3
        while asleep(http) != a.subscribers + 1:
            assert time.time() < deadline, f"not all asleep: {asleep(http)}"
            time.sleep(0.2)

        def round_trip(i):
            msg = frame(0x30, field(f"w/{i}".encode()) + b"x" * 16)
            t0 = time.perf_counter_ns()
            pub.sendall(msg)
            first, _ = read_packet(subs[i])
            t1 = time.perf_counter_ns()
            assert first & 0xF0 == 0x30
            return (t1 - t0) / 1000

        # The first message also wakes the publisher: left out.
        round_trip(0)
        sleeping = [round_trip(i) for i in range(1, a.subscribers)]
        awake = [round_trip(i) for i in range(1, a.subscribers)]
        for name, xs in (("asleep", sleeping), ("awake", awake)):
            xs = sorted(xs)
            print(f"{name:7} n={len(xs)} p50 {statistics.median(xs):7.1f} us  "
                  f"p90 {xs[int(len(xs) * 0.9)]:7.1f} us  max {xs[-1]:7.1f} us")
        print(f"wake cost (p50 difference): "
              f"{statistics.median(sleeping) - statistics.median(awake):.1f} us")
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
