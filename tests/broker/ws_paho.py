#!/usr/bin/env python3
"""A real third-party MQTT-over-WebSocket client for tests/broker/t17_websocket.rs: Eclipse paho
(Python) with transport="websockets", and Python's ssl (OpenSSL) for wss.

  ws_paho.py sub PORT ID FILTER COUNT [options]  prints "ready" once subscribed, then one line per
                                                 message payload; exits 0 after COUNT messages
  ws_paho.py pub PORT ID TOPIC MSG... [options]   publishes each MSG at --qos and waits for each
                                                 to complete; exits 0
options: --v5 (else MQTT 3.1.1, also --v3), --qos N, --path P, --cafile CA (wss), --big N (append a payload of N bytes)
Exits 1 on a refused connection or after --within seconds (default 10). Works with paho 1.6
(Debian's python3-paho-mqtt) and 2.x.
"""
import argparse
import os
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt


def client(cid, v5, cafile, path):
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    kw = dict(client_id=cid, transport="websockets", protocol=proto)
    if hasattr(mqtt, "CallbackAPIVersion"):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kw)
    else:
        c = mqtt.Client(**kw)
    c.ws_set_options(path=path)
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        c.tls_set_context(ctx)
    return c


def connect(c, port, v5):
    done = threading.Event()
    result = {}

    def on_connect(cl, userdata, flags, rc, properties=None):
        result["rc"] = rc
        done.set()

    c.on_connect = on_connect
    if v5:
        c.connect("127.0.0.1", port, clean_start=True)
    else:
        c.connect("127.0.0.1", port)
    c.loop_start()
    if not done.wait(5) or result["rc"] != 0:
        print(f"connect failed: {result.get('rc')}", flush=True)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["sub", "pub"])
    ap.add_argument("port", type=int)
    ap.add_argument("id")
    ap.add_argument("topic")
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--v5", action="store_true")
    ap.add_argument("--v3", dest="v5", action="store_false")
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--path", default="/mqtt")
    ap.add_argument("--cafile")
    ap.add_argument("--big", type=int, default=0)
    ap.add_argument("--within", type=float, default=10)
    a = ap.parse_args()
    threading.Timer(a.within, lambda: os._exit(1)).start()
    c = client(a.id, a.v5, a.cafile, a.path)
    if a.mode == "sub":
        count = int(a.rest[0])
        got = []
        finished = threading.Event()
        subscribed = threading.Event()

        def on_message(cl, userdata, m):
            p = m.payload
            print(p.decode() if len(p) < 200 else f"big:{len(p)}", flush=True)
            got.append(p)
            if len(got) >= count:
                finished.set()

        c.on_message = on_message
        c.on_subscribe = lambda *args: subscribed.set()
        connect(c, a.port, a.v5)
        c.subscribe(a.topic, a.qos)
        if not subscribed.wait(5):
            sys.exit(1)
        print("ready", flush=True)
        finished.wait()
    else:
        connect(c, a.port, a.v5)
        msgs = [m.encode() for m in a.rest]
        if a.big:
            msgs.append(bytes(i % 251 for i in range(a.big)))
        for m in msgs:
            info = c.publish(a.topic, m, qos=a.qos)
            info.wait_for_publish()
    c.disconnect()
    c.loop_stop()
    os._exit(0)


if __name__ == "__main__":
    main()
