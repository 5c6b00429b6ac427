#!/usr/bin/env python3
"""Memory per queued message: RSS the broker adds per 64-byte QoS 1 message queued for an
offline persistent session, when the publisher interleaves topics nobody queues (so every read
chunk holds both kinds: a broker that keeps slices of its read buffers pins whole chunks).

Usage: perf/queued-memory.py [--messages 100000] [--payload 64] [--shards N] [--binary PATH]
Needs: paho-mqtt (pip install paho-mqtt), a release build (cargo build --release).
Starts its own broker on a free loopback port and stops it (by PID) when done.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

import paho.mqtt.client as mqtt


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def client(port, cid, clean):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_start()
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--shards", type=int, default=0, help="0 = the broker's default")
    ap.add_argument("--binary", default="target/release/ringmq")
    a = ap.parse_args()
    port = free_port()
    args = [a.binary, "--bind", f"127.0.0.1:{port}", "--log-level", "warn",
            "--queued-messages-max", str(a.messages * 2),
            "--queued-bytes-max", str(a.messages * a.payload * 4)]
    if a.shards:
        args += ["--shards", str(a.shards)]
    broker = subprocess.Popen(args)
    try:
        time.sleep(0.5)
        sub = client(port, "qm-sub", clean=False)
        sub.subscribe("qm/keep", qos=1)
        time.sleep(0.3)
        sub.disconnect()
        sub.loop_stop()
        time.sleep(0.3)
        before = rss_bytes(broker.pid)
        pub = client(port, "qm-pub", clean=True)
        payload = b"x" * a.payload
        infos = []
        for i in range(a.messages):
            infos.append(pub.publish("qm/keep", payload, qos=1))
            infos.append(pub.publish(f"qm/other/{i % 16}", payload, qos=1))
            if len(infos) >= 2000:
                for inf in infos:
                    inf.wait_for_publish(30)
                infos.clear()
        for inf in infos:
            inf.wait_for_publish(30)
        pub.disconnect()
        pub.loop_stop()
        time.sleep(1.0)
        after = rss_bytes(broker.pid)
        # The session really holds them: reconnect and count.
        got = [0]
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="qm-sub", clean_session=False)
        sub.on_message = lambda c, u, m: got.__setitem__(0, got[0] + 1)
        sub.connect("127.0.0.1", port, keepalive=60)
        sub.loop_start()
        deadline = time.time() + 60
        while got[0] < a.messages and time.time() < deadline:
            time.sleep(0.1)
        sub.disconnect()
        sub.loop_stop()
        per = (after - before) / a.messages
        print(f"queued {a.messages} x {a.payload} B for an offline session (interleaved with "
              f"{a.messages} to other topics): RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB, "
              f"{per:.0f} B per queued message; delivered on reconnect: {got[0]}")
        return 0 if got[0] == a.messages else 1
    finally:
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    sys.exit(main())
