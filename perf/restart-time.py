#!/usr/bin/env python3
"""Start-up time of a ringmq whose store holds a lot: N retained messages, or S persistent
sessions each with Q queued QoS 1 messages. Fills the store through MQTT, kills the broker with
SIGKILL, starts it again on the same data directory and reports how long until it accepts a
CONNECT (and what its log says recovery took per shard).

  perf/restart-time.py --retained 1000000
  perf/restart-time.py --sessions 100000 --queued 10

Plain sockets and hand-encoded MQTT 3.1.1 packets: a third-party client library would make the
filling, not the broker, the slow part.
"""
import argparse, os, re, shutil, signal, socket, struct, subprocess, sys, tempfile, time


def rl(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(x):
    x = x.encode()
    return struct.pack(">H", len(x)) + x


def connect(cid, clean):
    body = s("MQTT") + bytes([4, 0x02 if clean else 0x00]) + struct.pack(">H", 600) + s(cid)
    return bytes([0x10]) + rl(len(body)) + body


def publish(topic, payload, qos=0, retain=False, pid=1):
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1) | (1 if retain else 0)]) + rl(len(body)) + body


def subscribe(topic, qos=1):
    body = struct.pack(">H", 1) + s(topic) + bytes([qos])
    return bytes([0x82]) + rl(len(body)) + body


DISCONNECT = bytes([0xE0, 0])


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        c = sock.recv(n - len(buf))
        if not c:
            raise ConnectionError("closed")
        buf += c
    return buf


def open_conn(port, cid, clean=True):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(connect(cid, clean))
    ack = read_exact(c, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError(f"CONNACK {ack!r}")
    return c


def start(binary, port, data, shards):
    log = open(os.path.join(os.path.dirname(data), "broker.log"), "a")
    p = subprocess.Popen([binary, "--bind", f"127.0.0.1:{port}", "--data-dir", data,
                          "--shards", str(shards), "--log-level", "info"],
                         stdout=log, stderr=log)
    t0 = time.monotonic()
    while True:
        try:
            c = open_conn(port, "restart-probe")
            c.sendall(DISCONNECT)
            c.close()
            return p, time.monotonic() - t0
        except (ConnectionError, OSError, RuntimeError):
            if p.poll() is not None:
                sys.exit("broker exited; see " + os.path.dirname(data) + "/broker.log")
            time.sleep(0.005)


def drain_acks(c, n):
    """Read n 4-byte PUBACKs."""
    read_exact(c, 4 * n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/ringmq")
    ap.add_argument("--port", type=int, default=18851)
    ap.add_argument("--shards", type=int, default=os.cpu_count())
    ap.add_argument("--retained", type=int, default=0)
    ap.add_argument("--sessions", type=int, default=0)
    ap.add_argument("--queued", type=int, default=10)
    ap.add_argument("--payload", type=int, default=64)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="ringmq-restart-")
    data = os.path.join(root, "data")
    p, _ = start(a.binary, a.port, data, a.shards)
    body = b"x" * a.payload
    t0 = time.monotonic()
    if a.retained:
        c = open_conn(a.port, "filler")
        batch = 1000
        for i in range(0, a.retained, batch):
            pkts = b"".join(publish(f"ret/{j // 1000}/{j}", body, 1, True, (j % 65535) + 1)
                            for j in range(i, min(i + batch, a.retained)))
            c.sendall(pkts)
            drain_acks(c, min(batch, a.retained - i))
        c.sendall(DISCONNECT)
    if a.sessions:
        for i in range(a.sessions):
            c = open_conn(a.port, f"sess-{i}", clean=False)
            c.sendall(subscribe("all/q", 1))
            read_exact(c, 5)  # SUBACK
            c.sendall(DISCONNECT)
            c.close()
        c = open_conn(a.port, "filler")
        for k in range(a.queued):
            c.sendall(publish("all/q", body, 1, False, k + 1))
            drain_acks(c, 1)
        c.sendall(DISCONNECT)
    fill_s = time.monotonic() - t0
    time.sleep(1.5)  # let compaction run once, as a broker that has been up a while
    du = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p, up_s = start(a.binary, a.port, data, a.shards)
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    p.wait()
    with open(os.path.join(root, "broker.log")) as f:
        rec = [l.strip() for l in f if "store recovered" in l]
    print(f"filled in {fill_s:.1f} s; store {du / 1e6:.1f} MB allocated on disk")
    print(f"restart after kill -9: accepting CONNECT after {up_s * 1000:.0f} ms")
    for l in rec[-a.shards:]:
        print("  " + re.sub(r"^\[[^]]*\] ", "", l))
    shutil.rmtree(root)



if __name__ == "__main__":
    main()
