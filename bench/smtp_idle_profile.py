"""Where an idle SMTP session's memory goes: a tracemalloc profile.

Starts an embedded PostgreSQL (pgserver, temporary directory) and relay's SMTP service
in this process, opens ``--baseline`` plaintext sessions (greeting + EHLO, then idle)
from plain blocking sockets in a thread, then starts tracing and opens ``--sessions``
more; prints the Python heap added per session, the top lines and the top files. The
clients are plain sockets, not trio objects, so what grows is the server's side.
(RSS per session, allocator overhead included: ``bench/smtp_load.py hold``.)

Example:
  python bench/smtp_idle_profile.py --sessions 2000
"""

from __future__ import annotations

import argparse
import functools
import socket
import sys
import tempfile
import tracemalloc
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay import composition
from relay.config import Config, DatabaseConfig, SmtpConfig, TlsConfig
from relay.storage import host, migrations


def connect(port: int, count: int, into: list[socket.socket]) -> None:
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.recv(1000)
        sock.sendall(b"EHLO bench.test\r\n")
        sock.recv(4000)
        into.append(sock)


async def main(args: argparse.Namespace, url: str, workdir: Path) -> None:
    config = Config(
        database=DatabaseConfig(url=url, migrate_on_start=False),
        smtp=SmtpConfig(
            listen="127.0.0.1:0", max_connections=args.sessions + args.baseline + 10,
            command_timeout=600, per_ip_exempt_networks=("127.0.0.0/8",),
            shared_limits_interval=0,
        ),
        tls=TlsConfig(self_signed_dir=str(workdir / "tls")),
    )
    async with trio.open_nursery() as nursery:
        started = await nursery.start(
            functools.partial(composition.serve, config, services=("smtp",), handle_signals=False)
        )
        port = started.smtp.ports[0]
        clients: list[socket.socket] = []
        await trio.to_thread.run_sync(connect, port, args.baseline, clients)
        await trio.sleep(0.5)
        tracemalloc.start(10)
        before = tracemalloc.take_snapshot()
        await trio.to_thread.run_sync(connect, port, args.sessions, clients)
        await trio.sleep(1)
        after = tracemalloc.take_snapshot()
        n = args.sessions
        lines = after.compare_to(before, "lineno")
        print(f"Python heap per idle session: {sum(s.size_diff for s in lines) / n:.0f} B ({n} sessions)")
        for stat in lines[: args.top]:
            print(f"{stat.size_diff / n:8.0f} B  {stat.traceback[0]}")
        print("by file:")
        for stat in after.compare_to(before, "filename")[: args.top]:
            print(f"{stat.size_diff / n:8.0f} B  {stat.traceback[0].filename}")
        for sock in clients:
            sock.close()
        started.shutdown.set()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=200, help="sessions opened before tracing")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    import pgserver

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = pgserver.get_server(workdir / "pg", cleanup_mode="stop")
        url = server.get_uri()
        migrations.apply(url)
        host.run(main, args, url, workdir)


if __name__ == "__main__":
    run()
