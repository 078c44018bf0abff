"""Where a connection-per-message client's time goes, step by step, and relay's CPU per connection.

Starts `relay smtp` the way bench/compare.py does (plaintext, the bench account with an
IP credential for 127.0.0.0/8, so no AUTH), on a fresh database of a running PostgreSQL
(--server-url; one is created per run), then opens --threads × --connections
connections from plain blocking sockets, each doing greeting, EHLO, MAIL, RCPT, DATA,
a 2 kB message and QUIT, and prints per step p50/p90/max, connections/s, and the relay
process's CPU (utime + stime from /proc) per connection. The clients are threads of
one Python process, so connections/s is the generator's as much as relay's; the CPU
per connection is relay's alone.

Examples:
  python bench/smtp_steps.py --server-url 'postgresql://postgres:@/postgres?host=/tmp/pg'
  RELAY_SMTP__ACCOUNT_CACHE_TTL=0 python bench/smtp_steps.py --server-url ...   # no account cache
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import compare  # bench/compare.py: run_relay, relay_env

STEPS = ("connect+greeting", "EHLO", "MAIL", "RCPT", "DATA", "message", "QUIT")
COMMANDS = (
    b"EHLO steps.test\r\n",
    b"MAIL FROM:<bench@bench.test>\r\n",
    b"RCPT TO:<rcpt@example.net>\r\n",
    b"DATA\r\n",
    b"From: bench@bench.test\r\nTo: rcpt@example.net\r\nSubject: steps\r\n\r\n"
    + b"x" * 1900 + b"\r\n.\r\n",
    b"QUIT\r\n",
)


def reply(sock: socket.socket, buffer: list[bytes]) -> bytes:
    """The last line of the next (possibly multiline) reply."""
    while True:
        while b"\r\n" not in buffer[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            buffer[0] += chunk
        line, buffer[0] = buffer[0].split(b"\r\n", 1)
        if line[3:4] != b"-":
            return line


def one_connection(port: int, times: dict[str, list[float]]) -> None:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        buffer = [b""]
        reply(sock, buffer)
        marks = [time.perf_counter()]
        for command in COMMANDS:
            sock.sendall(command)
            line = reply(sock, buffer)
            if line[:1] not in b"23":
                raise RuntimeError(f"{command[:4]!r} answered {line!r}")
            marks.append(time.perf_counter())
    durations = [marks[0] - started] + [b - a for a, b in itertools.pairwise(marks)]
    for step, seconds in zip(STEPS, durations, strict=True):
        times.setdefault(step, []).append(seconds * 1000)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def fresh_database(server_url: str) -> str:
    name = "steps_" + uuid.uuid4().hex[:10]
    import psycopg2  # test extra; only here, so compare.py stays importable without it

    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", required=True, help="a PostgreSQL server (a database is created)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=250, help="per thread")
    parser.add_argument("--warm-up", type=int, default=50)
    args = parser.parse_args()
    url = fresh_database(args.server_url)
    with tempfile.TemporaryDirectory() as workdir, \
            compare.run_relay(url, Path(workdir), args.threads, True) as (port, why, _):
        if why:
            sys.exit(f"relay still wants AUTH: {why}")
        for _ in range(args.warm_up):
            one_connection(port, {})
        pid = int(subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "relay smtp"],
                                 capture_output=True, text=True, check=True).stdout.split()[-1])
        times: dict[str, list[float]] = {}
        cpu_before, started = cpu_seconds(pid), time.perf_counter()

        def client() -> None:
            for _ in range(args.connections):
                one_connection(port, times)

        threads = [threading.Thread(target=client) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
        total = args.threads * args.connections
        print(f"{total / elapsed:.0f} connections/s, relay CPU {1000 * cpu / total:.3f} ms per connection")
        for step in STEPS:
            values = sorted(times[step])
            print(f"{step:18} p50 {values[len(values) // 2]:7.2f} ms  "
                  f"p90 {values[int(len(values) * 0.9)]:7.2f}  max {values[-1]:7.2f}")


if __name__ == "__main__":
    main()
