#!/usr/bin/env python3
"""Memory per idle connection, plain TCP and TLS (and with --ws, MQTT over WebSocket): the RSS
the broker adds per connected MQTT 3.1.1 client that then sends nothing (keep alive 600 s),
measured on the same broker with every listener. TLS clients are Python's ssl module
(OpenSSL), TLS 1.3; WebSocket clients do the RFC 6455 upgrade on /mqtt and send the CONNECT
in one masked binary frame.

Usage: perf/idle-memory.py [--connections 2000] [--shards 1] [--binary PATH] [--ws] [--settle S]
       perf/idle-memory.py --broker mosquitto [--connections 2000] [--binary /usr/sbin/mosquitto] [--ws]
Needs: openssl (for the test certificate), a release build (cargo build --release), or
Mosquitto for `--broker mosquitto` (the same listeners, the same certificate and clients; with
--ws its websockets listener beside them).
Starts its own broker on free loopback ports and stops it (by PID) when done.
"""
import argparse
import base64
import os
import resource
import shutil
import socket
import ssl
import subprocess
import tempfile
import time


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


def connect_packet(cid):
    cid = cid.encode()
    var = b"\x00\x04MQTT\x04\x02\x02\x58"  # 3.1.1, clean session, keep alive 600 s
    payload = len(cid).to_bytes(2, "big") + cid
    body = var + payload
    return bytes([0x10, len(body)]) + body


def ws_frame(payload):
    """A masked binary frame (payloads under 126 bytes)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + body


def ws_request(s, port):
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").encode())


def ws_response(s):
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(1024)
        if not chunk:
            raise RuntimeError("closed during the WebSocket handshake")
        resp += chunk
    if not resp.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {resp[:40]!r}")


def read_connack(s, want):
    ack = b""
    while len(ack) < len(want):
        chunk = s.recv(len(want) - len(ack))
        if not chunk:
            break
        ack += chunk
    if ack != want:
        raise RuntimeError(f"CONNACK {ack!r}")


def open_clients(n, port, tls_ctx, prefix, ws=False):
    if ws:
        return open_ws_clients(n, port, prefix)
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if tls_ctx is not None:
            s = tls_ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(connect_packet(f"{prefix}-{i}"))
        read_connack(s, b"\x20\x02\x00\x00")
        socks.append(s)
    return socks


def open_ws_clients(n, port, prefix, batch=200):
    """WebSocket clients, a batch at a time: every request of a batch is sent before the first
    answer is awaited, and every CONNECT before the first CONNACK. Mosquitto 2.0.11 answers
    each step of a lone WebSocket client only at its next ~100 ms wake-up, so one at a time
    4,000 clients would take about 13 minutes (20 took 4 s); what each idle connection costs is
    the same."""
    socks = []
    for first in range(0, n, batch):
        group = [socket.create_connection(("127.0.0.1", port))
                 for _ in range(min(batch, n - first))]
        for s in group:
            ws_request(s, port)
        for s in group:
            ws_response(s)
        for j, s in enumerate(group):
            s.sendall(ws_frame(connect_packet(f"{prefix}-{first + j}")))
        for s in group:
            read_connack(s, b"\x82\x04\x20\x02\x00\x00")
        socks += group
    return socks


def settle(pid, seconds):
    time.sleep(seconds)
    return rss_bytes(pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--no-thp", action="store_true",
                    help="run ringmq with mimalloc's transparent huge pages off (exact figures)")
    ap.add_argument("--binary", default=None,
                    help="broker binary [target/release/ringmq, or mosquitto on PATH]")
    ap.add_argument("--broker", choices=["ringmq", "mosquitto"], default="ringmq")
    ap.add_argument("--ws", action="store_true", help="also measure MQTT over WebSocket")
    ap.add_argument("--settle", type=float, default=12.0,
                    help="seconds to wait before each RSS reading [12: past ringmq's default "
                         "hibernate_idle_ms of 10 s, after which idle plain-TCP connections "
                         "sleep without a task]")
    a = ap.parse_args()
    if a.binary is None:
        a.binary = ("target/release/ringmq" if a.broker == "ringmq"
                    else shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * a.connections + 100), hard))
    d = tempfile.mkdtemp(prefix="ringmq-idle-")
    key, cert = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    plain, tls, ws = free_port(), free_port(), free_port()
    if a.broker == "ringmq":
        cfg = os.path.join(d, "ringmq.toml")
        with open(cfg, "w") as f:
            f.write(f'data_dir = "{d}/data"\n[[listener]]\nbind = "127.0.0.1:{plain}"\n'
                    f'[[listener]]\nbind = "127.0.0.1:{tls}"\nprotocol = "mqtts"\n'
                    f'certfile = "{cert}"\nkeyfile = "{key}"\n')
            if a.ws:
                f.write(f'[[listener]]\nbind = "127.0.0.1:{ws}"\nprotocol = "ws"\n')
        cmd = [a.binary, "--config", cfg, "--shards", str(a.shards), "--log-level", "warn"]
    else:
        # Started as root, Mosquitto reads its files as user mosquitto: a throwaway key.
        os.chmod(d, 0o755)
        os.chmod(key, 0o644)
        cfg = os.path.join(d, "mosquitto.conf")
        with open(cfg, "w") as f:
            f.write(f"max_connections -1\nset_tcp_nodelay true\npersistence false\n"
                    f"log_type error\nlog_dest stderr\n"
                    f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
                    f"listener {tls} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n")
            if a.ws:
                # Its websockets listener (libwebsockets) binds the given address only with
                # socket_domain ipv4; otherwise it listens on every address.
                f.write(f"listener {ws} 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n")
        cmd = [a.binary, "-c", cfg]
    # Mosquitto logs every TLS client that closes without close_notify (these do): keep the
    # broker's log out of the output, in the temporary directory.
    env = dict(os.environ)
    if a.no_thp:
        # mimalloc backs its arenas with transparent huge pages where the kernel allows
        # (madvise): RSS then grows in 2 MiB steps, 500 B per connection at 4,000. Without THP
        # it grows by 4 KiB pages and the figure is exact to about a byte.
        env["MIMALLOC_ALLOW_THP"] = "0"
    broker = subprocess.Popen(cmd, env=env, stderr=open(os.path.join(d, "broker.log"), "w"))
    ctx = ssl.create_default_context(cafile=cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        time.sleep(0.5)
        # Warm up both paths so one-time allocations are not counted per connection.
        warm = open_clients(50, plain, None, "warm-p") + open_clients(50, tls, ctx, "warm-t")
        if a.ws:
            warm += open_clients(50, ws, None, "warm-w", ws=True)
        for s in warm:
            s.close()
        base = settle(broker.pid, a.settle)
        p = open_clients(a.connections, plain, None, "plain")
        after_plain = settle(broker.pid, a.settle)
        t = open_clients(a.connections, tls, ctx, "tls")
        after_tls = settle(broker.pid, a.settle)
        w = []
        after_ws = after_tls
        if a.ws:
            w = open_clients(a.connections, ws, None, "ws", ws=True)
            after_ws = settle(broker.pid, a.settle)
        per_plain = (after_plain - base) / a.connections
        per_tls = (after_tls - after_plain) / a.connections
        shards = f", shards: {a.shards}" if a.broker == "ringmq" else ""
        print(f"broker: {a.broker}, connections per kind: {a.connections}{shards}")
        print(f"plain TCP: {per_plain:,.0f} B per idle connection")
        print(f"TLS 1.3:   {per_tls:,.0f} B per idle connection")
        if a.ws:
            per_ws = (after_ws - after_tls) / a.connections
            print(f"WebSocket: {per_ws:,.0f} B per idle connection")
        for s in p + t + w:
            s.close()
    finally:
        broker.terminate()
        broker.wait(timeout=10)


if __name__ == "__main__":
    main()
