#!/usr/bin/env python3
"""A TCP proxy that counts the bytes it forwards, for benchmarks over SSH.

    countproxy.py --target-port PORT [--target-host 127.0.0.1] [--listen-host 127.0.0.1]

Listens on LISTEN_HOST at a free port chosen by the kernel and forwards every connection to
TARGET_HOST:TARGET_PORT, counting the payload bytes in each direction (TCP payload: the SSH
byte stream, without IP/TCP headers). A second listener, the control port, answers one
command per line:

    take   wait until no forwarded connection is open (at most 10 s), then reply
           "UP DOWN CONNS OPEN" and set the counters to zero: UP bytes client->server,
           DOWN bytes server->client, CONNS connections accepted since the last take,
           OPEN connections still open (0 unless the wait timed out)
    peek   reply the same line at once, without waiting or resetting
    quit   reply "bye" and stop the proxy

With --http the reply has a fifth field, REQS: the HTTP/1.x requests the clients sent. Each
connection's client->server stream is read as HTTP/1.x: a request head, then its body as
Content-Length or chunked transfer coding says, then the next request. (Searching the stream
for request lines instead missed every request that followed a body on a kept-alive connection,
as a body does not end with CRLF.) A stream that stops parsing as HTTP is no longer counted, and
the proxy says so on stderr. For benchmarks of S3 clients.

With --frames smb or --frames rpc the fifth field counts the requests of a binary protocol
instead, from its framing of the client->server stream: `smb`, the messages of SMB 2/3 over
direct TCP (a zero byte and a 24-bit length before each; a compound of several commands counts
once, as it is one round trip); `rpc`, ONC RPC records (NFS, MOUNT, the portmapper: a 4-byte
record mark, the high bit on a record's last fragment, 31 bits of length; a record counts when
its last fragment ends).

A benchmark does `take` before a measured command (to discard anything earlier) and `take`
after it: the second reply is that command's traffic. Waiting for the connections to close
makes the count complete: the last bytes of a session (the server's channel close) may still
be in flight when the client process has already exited.

On start it prints one line to stdout, "PORT CONTROL_PORT", and flushes it. It stops on
SIGTERM, SIGINT or `quit`. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

BUF = 256 * 1024
REQUEST_LINE = re.compile(rb"(?:GET|PUT|POST|HEAD|DELETE|OPTIONS|PATCH) [^ ]+ HTTP/1\.[01]")
MAX_HEAD = 256 * 1024


class Counters:
    def __init__(self) -> None:
        self.up = 0
        self.down = 0
        self.conns = 0
        self.open = 0
        self.requests = 0
        self.http = False
        self.idle = asyncio.Event()
        self.idle.set()

    def line(self) -> str:
        reqs = f" {self.requests}" if self.http else ""
        return f"{self.up} {self.down} {self.conns} {self.open}{reqs}\n"

    def reset(self) -> None:
        self.up = self.down = self.conns = self.requests = 0


class RequestCounter:
    """Counts the requests in one connection's client->server stream, across reads.

    A small state machine over the byte stream: "head" collects a request head up to its blank
    line; "body" skips Content-Length bytes; "chunk-size", "chunk-data" and "trailer" follow the
    chunked transfer coding; "lost" stops counting a stream that is not HTTP/1.x.
    """

    def __init__(self, counters: Counters) -> None:
        self.c = counters
        self.state = "head"
        self.buf = b""
        self.left = 0

    def lose(self, why: str) -> None:
        print(f"countproxy: stopped counting requests on a connection: {why}", file=sys.stderr,
              flush=True)
        self.state, self.buf = "lost", b""

    def feed(self, data: bytes) -> None:
        if self.state == "lost":
            return
        self.buf += data
        while self.buf and self.state != "lost":
            if self.state in ("body", "chunk-data"):
                n = min(self.left, len(self.buf))
                self.buf = self.buf[n:]
                self.left -= n
                if self.left:
                    return
                # After a chunk's data comes its CRLF, read as the end of a size line.
                self.state = "head" if self.state == "body" else "chunk-end"
                continue
            line_end = b"\r\n\r\n" if self.state == "head" else b"\r\n"
            i = self.buf.find(line_end)
            if i < 0:
                if len(self.buf) > MAX_HEAD:
                    self.lose(f"no end of {self.state} in {MAX_HEAD} bytes")
                return
            part, self.buf = self.buf[:i], self.buf[i + len(line_end):]
            if self.state == "head":
                self.head(part)
            elif self.state == "chunk-end":
                if part:
                    self.lose("chunk data not followed by CRLF")
                else:
                    self.state = "chunk-size"
            elif self.state == "chunk-size":
                try:
                    size = int(part.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.lose("bad chunk size")
                    continue
                if size:
                    self.state, self.left = "chunk-data", size
                else:
                    self.state = "trailer"
            elif self.state == "trailer" and not part:
                self.state = "head"

    def head(self, head: bytes) -> None:
        lines = head.lstrip(b"\r\n").split(b"\r\n")
        if not REQUEST_LINE.fullmatch(lines[0]):
            self.lose(f"not a request line: {lines[0][:80]!r}")
            return
        self.c.requests += 1
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length" and value.isdigit():
                length = int(value)
            elif name == b"transfer-encoding" and value.endswith(b"chunked"):
                chunked = True
        if chunked:
            self.state = "chunk-size"
        elif length:
            self.state, self.left = "body", length


class FrameCounter:
    """Counts the length-prefixed messages of one connection's client->server stream."""

    def __init__(self, counters: Counters, kind: str) -> None:
        self.c = counters
        self.kind = kind
        self.buf = b""
        self.left = 0
        self.last = False
        self.lost = False

    def feed(self, data: bytes) -> None:
        if self.lost:
            return
        while data:
            if self.left:
                n = min(self.left, len(data))
                data, self.left = data[n:], self.left - n
                if not self.left and self.last:
                    self.c.requests += 1
                continue
            need = 4 - len(self.buf)
            self.buf, data = self.buf + data[:need], data[need:]
            if len(self.buf) < 4:
                return
            mark, self.buf = int.from_bytes(self.buf, "big"), b""
            if self.kind == "smb":
                if mark >> 24:
                    print("countproxy: stopped counting frames: not SMB direct TCP",
                          file=sys.stderr, flush=True)
                    self.lost = True
                    return
                self.left, self.last = mark & 0xFFFFFF, True
            else:
                self.left, self.last = mark & 0x7FFFFFFF, bool(mark >> 31)
            if not self.left and self.last:
                self.c.requests += 1


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count, abort,
               requests: RequestCounter | FrameCounter | None = None) -> None:
    """Copy reader to writer until EOF, then half-close writer; on an error, abort both ends."""
    try:
        while True:
            data = await reader.read(BUF)
            if not data:
                break
            count(len(data))
            if requests is not None:
                requests.feed(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        # Without this the other direction could wait for ever on a peer that is gone.
        abort()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--target-host", default="127.0.0.1")
    ap.add_argument("--listen-host", default="127.0.0.1")
    ap.add_argument("--http", action="store_true", help="also count HTTP requests (REQS)")
    ap.add_argument("--frames", choices=("smb", "rpc"),
                    help="also count SMB messages or ONC RPC records sent by clients (REQS)")
    args = ap.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


async def serve(args) -> None:
    c = Counters()
    c.http = args.http or args.frames is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def add_up(n: int) -> None:
        c.up += n

    def add_down(n: int) -> None:
        c.down += n

    # asyncio.start_server keeps its handler task only until the client's connection is lost
    # (StreamReaderProtocol.connection_lost drops it, Python 3.11) and the loop holds tasks
    # weakly: a handler still waiting for the server's side to close was then garbage-collected
    # mid-await, its `finally` never ran, and OPEN stayed above zero for ever, so every later
    # `take` waited its full 10 s. Holding the tasks here keeps each handler alive to its end.
    handlers: set[asyncio.Task] = set()

    async def forward(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        if me is not None:
            handlers.add(me)
        c.conns += 1
        c.open += 1
        c.idle.clear()
        swriter = None
        try:
            try:
                sreader, swriter = await asyncio.open_connection(args.target_host, args.target_port)
            except OSError as e:
                print(f"countproxy: cannot reach {args.target_host}:{args.target_port}: {e}",
                      file=sys.stderr, flush=True)
                return
            def abort() -> None:
                cwriter.transport.abort()
                swriter.transport.abort()

            if args.frames:
                requests = FrameCounter(c, args.frames)
            elif args.http:
                requests = RequestCounter(c)
            else:
                requests = None
            await asyncio.gather(pump(creader, swriter, add_up, abort, requests),
                                 pump(sreader, cwriter, add_down, abort))
        finally:
            for w in (cwriter, swriter):
                if w is not None:
                    w.close()
                    try:
                        await w.wait_closed()
                    except (ConnectionError, OSError):
                        pass
            c.open -= 1
            if c.open == 0:
                c.idle.set()
            handlers.discard(me)

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.decode(errors="replace").strip()
                if cmd == "take":
                    # Let connections the kernel has accepted but the loop has not yet seen
                    # be counted as open before deciding the proxy is idle.
                    await asyncio.sleep(0.05)
                    try:
                        await asyncio.wait_for(c.idle.wait(), timeout=10)
                    except asyncio.TimeoutError:
                        pass
                    writer.write(c.line().encode())
                    c.reset()
                elif cmd == "peek":
                    writer.write(c.line().encode())
                elif cmd == "quit":
                    writer.write(b"bye\n")
                    await writer.drain()
                    stop.set()
                    break
                else:
                    writer.write(f"error unknown command {cmd!r}\n".encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # The proxy is stopping with a client still on the control port (the benchmark
            # holds it open to the end): end quietly rather than log a cancelled task.
            pass
        finally:
            writer.close()

    proxy = await asyncio.start_server(forward, args.listen_host, 0)
    ctl = await asyncio.start_server(control, args.listen_host, 0)
    port = proxy.sockets[0].getsockname()[1]
    ctl_port = ctl.sockets[0].getsockname()[1]
    print(f"{port} {ctl_port}", flush=True)
    await stop.wait()
    proxy.close()
    ctl.close()


if __name__ == "__main__":
    sys.exit(main())
