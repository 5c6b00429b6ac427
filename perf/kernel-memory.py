#!/usr/bin/env python3
"""Kernel memory per idle connection, which no broker's RSS shows: /proc/slabinfo before and
after N idle MQTT 3.1.1 clients (keep alive 600 s), per slab cache that grew by at least N/4
objects. Both ends of each connection are on loopback, so the socket caches count two objects
per connection (halve them for the broker's side); caches only the broker uses (io_uring's
`io_kiocb`, epoll's `eventpoll_epi`) count one. The kernel merges caches of equal object size,
so a name may stand for several; the sums hold.

Usage: perf/kernel-memory.py [--connections 4000] [--broker ringmq|mosquitto] [--binary PATH]
Needs read access to /proc/slabinfo (root). Starts its own broker on a free loopback port and
stops it (by PID) when done.
"""
import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time


def slabs():
    out = {}
    with open("/proc/slabinfo") as f:
        for line in f.readlines()[2:]:
            p = line.split()
            out[p[0]] = (int(p[1]), int(p[3]))
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect_packet(client_id):
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x02\x58" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=4000)
    ap.add_argument("--broker", choices=["ringmq", "mosquitto"], default="ringmq")
    ap.add_argument("--binary", default=None)
    ap.add_argument("--settle", type=float, default=12.0,
                    help="seconds before the second reading [12: past ringmq's default "
                         "hibernate_idle_ms, after which its idle connections wait in epoll]")
    a = ap.parse_args()
    port = free_port()
    d = tempfile.mkdtemp(prefix="kernel-memory-")
    if a.broker == "ringmq":
        binary = a.binary or "target/release/ringmq"
        cmd = [binary, "--bind", f"127.0.0.1:{port}", "--data-dir", os.path.join(d, "data"),
               "--shards", "1", "--log-level", "error"]
    else:
        binary = a.binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
        cmd = [binary, "-c", conf]
    broker = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    socks = []
    try:
        time.sleep(1.0)
        before = slabs()
        for i in range(a.connections):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(connect_packet(f"km-{i}"))
            if s.recv(4) != b"\x20\x02\x00\x00":
                raise RuntimeError(f"client {i}: no CONNACK")
            socks.append(s)
        time.sleep(a.settle)
        after = slabs()
        print(f"broker: {a.broker}, idle connections: {a.connections}")
        total = 0.0
        for name, (objs, size) in sorted(after.items()):
            grew = objs - before.get(name, (0, 0))[0]
            if grew >= a.connections // 4:
                per = grew * size / a.connections
                total += per
                print(f"{name:24} +{grew:7} objects x {size:5} B = {per:7.0f} B per connection")
        print(f"total (both ends of loopback): {total:,.0f} B per connection")
    finally:
        for s in socks:
            s.close()
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
