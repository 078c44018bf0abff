"""proto benchmark: commands parsed per second and DATA throughput.

Run: ``python bench/proto_bench.py`` (from the repository root). Pure CPU, one core:
bytes go straight into ``proto.ServerConnection``; no sockets are involved.

Reported:
* commands/s — pipelined ``MAIL``/``RCPT``/``RSET`` (and ``NOOP``) lines, each parsed
  and answered (``next_event()`` + ``send()``);
* DATA MB/s — a 1 MB and a 25 MB message (78-octet lines, every 50th line dot-stuffed)
  fed in 64 KiB reads, from the first body byte to ``EndOfData``; also through BDAT,
  and with the client-side ``DotStuffer`` writing the same body.
"""

from __future__ import annotations

import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import proto
from proto._writers import DotStuffer

RECV = 65_536
OK = proto.Reply(250, "OK", "2.0.0")


def greeted(max_size: int = 64 * 1024 * 1024) -> proto.ServerConnection:
    conn = proto.ServerConnection("bench.example", limits=proto.Limits(max_message_size=max_size))
    conn.send(proto.Reply(220, "bench.example ESMTP"))
    conn.receive_data(b"EHLO client.example\r\n")
    conn.next_event()
    conn.send(proto.Reply(250, ""))
    return conn


def bench_commands(lines: bytes, repeat: int) -> float:
    """Commands per second for ``lines`` (one command group) repeated ``repeat`` times."""
    conn = greeted()
    stream = lines * repeat
    n = lines.count(b"\r\n") * repeat
    start = time.perf_counter()
    for i in range(0, len(stream), RECV):
        conn.receive_data(stream[i : i + RECV])
        while True:
            event = conn.next_event()
            if event is proto.NEED_DATA:
                break
            conn.send(OK)
    elapsed = time.perf_counter() - start
    return n / elapsed


def make_body(size: int) -> bytes:
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod te\r\n"  # 78
    lines = [b"." + line[1:] if i % 50 == 0 else line for i in range(size // len(line) + 1)]
    return b"".join(lines)[:size - 2] + b"\r\n"


def in_transaction() -> proto.ServerConnection:
    conn = greeted()
    conn.receive_data(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
    for _ in range(2):
        conn.next_event()
        conn.send(OK)
    return conn


def bench_data(body: bytes) -> float:
    """MB/s through DATA for an already dot-stuffed wire body."""
    conn = in_transaction()
    conn.receive_data(b"DATA\r\n")
    conn.next_event()
    conn.send(proto.Reply(354, "go"))
    wire = body + b".\r\n"
    received = 0
    start = time.perf_counter()
    for i in range(0, len(wire), RECV):
        conn.receive_data(wire[i : i + RECV])
        while True:
            event = conn.next_event()
            if event is proto.NEED_DATA:
                break
            if isinstance(event, proto.Data):
                received += len(event.data)
            elif isinstance(event, proto.EndOfData):
                assert event.refusal is None, event
                break
    elapsed = time.perf_counter() - start
    assert received == event.size
    return len(wire) / elapsed / 1e6


def bench_bdat(body: bytes) -> float:
    conn = in_transaction()
    wire = b"BDAT %d LAST\r\n" % len(body) + body
    start = time.perf_counter()
    for i in range(0, len(wire), RECV):
        conn.receive_data(wire[i : i + RECV])
        while True:
            event = conn.next_event()
            if event is proto.NEED_DATA or isinstance(event, proto.EndOfData):
                break
    elapsed = time.perf_counter() - start
    assert isinstance(event, proto.EndOfData) and event.refusal is None, event
    return len(wire) / elapsed / 1e6


def bench_stuffer(body: bytes) -> float:
    start = time.perf_counter()
    stuffer = DotStuffer()
    out = 0
    for i in range(0, len(body), RECV):
        out += len(stuffer.feed(body[i : i + RECV]))
    out += len(stuffer.finish())
    return len(body) / (time.perf_counter() - start) / 1e6


def best(fn, *args: object, rounds: int = 5) -> float:  # type: ignore[no-untyped-def]
    return max(fn(*args) for _ in range(rounds))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    group = b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nRSET\r\n"
    print(f"commands/s (MAIL/RCPT/RSET, pipelined): {best(bench_commands, group, 20_000):,.0f}")
    noop = b"NOOP\r\n"
    print(f"commands/s (NOOP, pipelined):           {best(bench_commands, noop, 60_000):,.0f}")
    for label, size in (("1 MB", 1_000_000), ("25 MB", 25_000_000)):
        raw = make_body(size)
        stuffer = DotStuffer()
        wire = stuffer.feed(raw) + stuffer.finish()[:-3]
        rounds = 5 if size < 10_000_000 else 3
        print(f"DATA {label:>5}: {best(bench_data, wire, rounds=rounds):7.0f} MB/s   "
              f"BDAT {label:>5}: {best(bench_bdat, raw, rounds=rounds):7.0f} MB/s   "
              f"client DotStuffer {label:>5}: {best(bench_stuffer, raw, rounds=rounds):7.0f} MB/s")


if __name__ == "__main__":
    main()
