#!/usr/bin/env python3
"""A slow, far network link in user space, between two TUN devices.

    linkemu.py link --tun-a NAME --tun-b NAME [--delay-ms 40] [--rate-mbit 50] [--queue-ms 100]
    linkemu.py probe-server --host ADDR --port PORT
    linkemu.py probe --host ADDR --port PORT [--mbytes 20]

`link` creates the TUN devices NAME_A and NAME_B (IFF_TUN, no packet information) and forwards
every IP packet read from one to the other, as a link would carry it: each direction serialises
its packets at RATE (a packet leaves when the previous one has left, taking len * 8 / rate) and
delivers each DELAY after it left. A packet that would wait more than QUEUE in the sender's
queue is dropped (a drop-tail buffer of QUEUE * RATE bytes), so TCP sees the loss it would see
on a real bottleneck instead of an endless queue. Used because this kernel has no netem qdisc.
The caller moves each device into its network namespace and gives it an address once the line
"ready" is printed on stdout; the devices vanish when the process ends.

Counts are printed to stderr on SIGUSR1 and at exit: bytes and packets each way (whole IP
packets), drops, and "turns": how many times a TCP segment carrying data went from A to B after
the last data segment had gone from B to A. With A the client's side, a client that waits for
each reply before its next request makes one turn per request, so turns count its round trips
(pipelined requests make fewer turns than requests).

`probe-server` and `probe` check a link: `probe` measures the round trip of 20 one-byte
ping-pongs over one TCP connection (median) and the rate at which the server receives MBYTES
of data (its own clock, from the first to the last byte). Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import os
import select
import signal
import socket
import statistics
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def tcp_payload(pkt: bytes) -> int:
    """Bytes of TCP payload in an IPv4 packet (0 for anything else)."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return 0
    ihl = (pkt[0] & 0x0F) * 4
    total = int.from_bytes(pkt[2:4], "big")
    if len(pkt) < ihl + 13:
        return 0
    doff = (pkt[ihl + 12] >> 4) * 4
    return max(0, total - ihl - doff)


class Direction:
    """One way of the link: a serialising queue, then a fixed delay."""

    def __init__(self, out_fd: int, rate_bps: float, delay: float, queue: float):
        self.out_fd = out_fd
        self.rate = rate_bps
        self.delay = delay
        self.queue = queue
        self.free_at = 0.0  # when the last accepted packet has left
        self.pending: collections.deque[tuple[float, bytes]] = collections.deque()
        self.bytes = 0
        self.packets = 0
        self.drops = 0

    def offer(self, pkt: bytes, now: float) -> bool:
        start = max(now, self.free_at)
        if start - now > self.queue:
            self.drops += 1
            return False
        self.free_at = start + len(pkt) * 8 / self.rate
        self.pending.append((self.free_at + self.delay, pkt))
        self.bytes += len(pkt)
        self.packets += 1
        return True

    def deliver(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now:
            _, pkt = self.pending.popleft()
            try:
                os.write(self.out_fd, pkt)
            except (BlockingIOError, OSError):
                self.drops += 1

    def next_due(self) -> float | None:
        return self.pending[0][0] if self.pending else None


def run_link(args: argparse.Namespace) -> int:
    fd_a = open_tun(args.tun_a)
    fd_b = open_tun(args.tun_b)
    rate = args.rate_mbit * 1e6
    delay = args.delay_ms / 1000
    queue = args.queue_ms / 1000
    a2b = Direction(fd_b, rate, delay, queue)
    b2a = Direction(fd_a, rate, delay, queue)
    turns = 0
    last_data_from_a = False
    stop = False

    def report(*_: object) -> None:
        print(
            f"linkemu: a->b {a2b.bytes} B {a2b.packets} pkts, b->a {b2a.bytes} B {b2a.packets} pkts, "
            f"drops {a2b.drops + b2a.drops}, turns {turns}",
            file=sys.stderr,
            flush=True,
        )

    def quit_(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGTERM, quit_)
    signal.signal(signal.SIGINT, quit_)
    print("ready", flush=True)
    while not stop:
        now = time.monotonic()
        dues = [d for d in (a2b.next_due(), b2a.next_due()) if d is not None]
        timeout = max(0.0, min(dues) - now) if dues else 0.5
        try:
            readable, _, _ = select.select([fd_a, fd_b], [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in readable:
            # Drain what is there, a bounded number at a time so that delivery stays on time.
            for _ in range(64):
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if fd == fd_a:
                    if a2b.offer(pkt, now) and tcp_payload(pkt):
                        if not last_data_from_a:
                            turns += 1
                        last_data_from_a = True
                else:
                    if b2a.offer(pkt, now) and tcp_payload(pkt):
                        last_data_from_a = False
        now = time.monotonic()
        a2b.deliver(now)
        b2a.deliver(now)
    report()
    return 0


def run_probe_server(args: argparse.Namespace) -> int:
    srv = socket.create_server((args.host, args.port))
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = conn.makefile("rb")
            while True:
                op = f.read(1)
                if not op or op == b"q":
                    break
                if op == b"p":
                    conn.sendall(b"p")
                elif op == b"d":
                    size = int.from_bytes(f.read(8), "big")
                    got, first = 0, None
                    while got < size:
                        chunk = f.read1(1 << 20)
                        if not chunk:
                            break
                        if first is None:
                            first = time.monotonic()
                        got += len(chunk)
                    took = time.monotonic() - (first or time.monotonic())
                    conn.sendall(f"{got} {took:.6f}\n".encode())
        if args.once:
            return 0


def run_probe(args: argparse.Namespace) -> int:
    with socket.create_connection((args.host, args.port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for _ in range(20):
            t0 = time.monotonic()
            conn.sendall(b"p")
            if conn.recv(1) != b"p":
                raise SystemExit("probe: the server did not answer")
            rtts.append(time.monotonic() - t0)
        size = args.mbytes * 1_000_000
        conn.sendall(b"d" + size.to_bytes(8, "big"))
        block = os.urandom(1 << 16)
        left = size
        while left:
            n = min(left, len(block))
            conn.sendall(block[:n])
            left -= n
        reply = conn.makefile("rb").readline().decode().split()
        conn.sendall(b"q")
    got, took = int(reply[0]), float(reply[1])
    print(
        f"rtt median {statistics.median(rtts) * 1000:.1f} ms (min {min(rtts) * 1000:.1f}, "
        f"max {max(rtts) * 1000:.1f}); throughput {got * 8 / took / 1e6:.1f} Mbit/s "
        f"({got} B in {took:.2f} s)"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    link = sub.add_parser("link")
    link.add_argument("--tun-a", required=True)
    link.add_argument("--tun-b", required=True)
    link.add_argument("--delay-ms", type=float, default=40.0)
    link.add_argument("--rate-mbit", type=float, default=50.0)
    link.add_argument("--queue-ms", type=float, default=100.0)
    server = sub.add_parser("probe-server")
    server.add_argument("--host", required=True)
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--once", action="store_true")
    probe = sub.add_parser("probe")
    probe.add_argument("--host", required=True)
    probe.add_argument("--port", type=int, required=True)
    probe.add_argument("--mbytes", type=int, default=20)
    args = ap.parse_args()
    return {"link": run_link, "probe-server": run_probe_server, "probe": run_probe}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
