#!/usr/bin/env python3
"""Idle app-client connections, plain or TLS, and the broker's RSS per connection (issue 13).

danmu-bench speaks plain ws:// only; this measures what a wss:// connection costs beside a
ws:// one, the same way for both: open N client WebSockets (JWT, upgrade, read `connected`),
optionally enter a room, send nothing more, and read the broker's VmRSS from /proc before and after. Run the broker with
a long client.idle_timeout_ms (DANMU__CLIENT__IDLE_TIMEOUT_MS=600000) so that it keeps them.

    bench/idle-conns.py --url ws://127.0.0.1:18300 --pid PID --clients 2000
    bench/idle-conns.py --url wss://127.0.0.1:18301 --pid PID --clients 2000
    bench/idle-conns.py --url ws://127.0.0.1:18300 --pid PID --clients 2000 --deflate

With --deflate every client offers permessage-deflate as browsers do (docs/protocol.md 2.8) and
fails unless the 101 answer accepted it: the cost of an idle connection with the extension
negotiated (issue 20). The frames this script reads (`connected`, the `enter_room_report` ack)
are a session's own answers, which the broker always sends plain.

Loopback only; Python 3 standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import sys
import time
from urllib.parse import urlparse


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret: str, user_id: str) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": user_id, "exp": int(time.time()) + 3600, "nickname": user_id}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_exact(sock, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def masked(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(sock) -> bytes:
    """One unmasked server frame's payload (7- or 16-bit length)."""
    b0, b1 = read_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exact(sock, 2), "big")
    return read_exact(sock, n)


def enter(sock, online_token: str, channel: str) -> None:
    ts = str(int(time.time() * 1000))
    sign = hashlib.md5(
        f"action=enter_room_report&online_token={online_token}&sid=s&timestamp={ts}".encode()).hexdigest()
    frame = {"action": "enter_room_report", "online_token": online_token, "sid": "s", "timestamp": ts,
             "sign": sign, "channel_name": channel}
    sock.sendall(masked(json.dumps(frame).encode()))
    while True:
        payload = read_frame(sock)
        if payload.startswith(b'{"action":"ack","for":"enter_room_report"'):
            return
        if payload.startswith(b'{"action":"error"'):
            raise ConnectionError(payload.decode())


DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


def accepted_deflate(head: bytes) -> bool:
    """Whether an upgrade answer's head agreed permessage-deflate."""
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions" and "permessage-deflate" in value.lower():
            return True
    return False


def open_client(host: str, port: int, tls, secret: str, i: int, rooms: int, deflate: bool):
    sock = socket.create_connection((host, port))
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=host)
    uid = f"idle-{os.getpid()}-{i}"
    query = f"user_id={uid}&sid=s&timestamp={int(time.time() * 1000)}&token={jwt(secret, uid)}"
    request = (
        f"GET /iapi/websocket?{query} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: ZGFubXUtaWRsZS0xMjM0NQ==\r\nSec-WebSocket-Version: 13\r\n"
        + (f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else "")
        + "\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    if deflate and not accepted_deflate(head):
        raise ConnectionError("the broker did not accept permessage-deflate (client.compression off?)")
    payload = read_frame(sock)
    if b'"connected"' not in payload:
        raise ConnectionError(f"first frame: {payload[:80]!r}")
    if rooms > 0:
        online_token = json.loads(payload)["online_token"]
        enter(sock, online_token, f"idle-{os.getpid()}-{i % rooms}")
    return sock


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--secret", default="change-me")
    p.add_argument("--rooms", type=int, default=0, help="enter client i into room i mod ROOMS (0: no room)")
    p.add_argument("--settle-s", type=float, default=2.0)
    p.add_argument("--deflate", action="store_true", help="offer permessage-deflate; fail unless accepted")
    p.add_argument("--hold-s", type=float, default=0.0, help="keep the connections this long after measuring")
    a = p.parse_args()
    url = urlparse(a.url)
    if url.hostname not in ("127.0.0.1", "localhost"):
        print("loopback only", file=sys.stderr)
        return 2
    tls = None
    if url.scheme == "wss":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    time.sleep(a.settle_s)
    before = rss_kb(a.pid)
    started = time.time()
    socks = [open_client(url.hostname, url.port, tls, a.secret, i, a.rooms, a.deflate) for i in range(a.clients)]
    opened = time.time() - started
    time.sleep(a.settle_s)
    after = rss_kb(a.pid)
    per = (after - before) / max(1, len(socks))
    result = {"url": a.url, "deflate": a.deflate, "clients": len(socks), "open_s": round(opened, 1), "rss_before_kb": before,
              "rss_after_kb": after, "kb_per_conn": round(per, 2)}
    print(json.dumps(result))
    time.sleep(a.hold_s)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
