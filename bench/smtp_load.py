"""SMTP submission load generator (trio): throughput, end-of-data latency, memory per session.

Modes:
  send   N concurrent sessions x M messages of S bytes; prints messages/s and the
         p50/p95/p99 latency from the end of DATA to the 250 (which we send only
         after the row has committed), with a progress line while it runs.
  hold   opens N authenticated idle sessions and reports the server's RSS growth
         per session (needs the server's pid: given, or the relay --spawn'ed here).

With --spawn the script starts its own embedded PostgreSQL and `relay smtp` on a
free loopback port, creates a bench account, runs, and stops everything. Traffic only
goes to 127.0.0.1; every run is bounded by its counts and by --max-seconds.

Examples:
  python bench/smtp_load.py --spawn send --sessions 50 --messages 20 --size 2000
  python bench/smtp_load.py --spawn send --sessions 50 --messages 1 --connections 1000
  python bench/smtp_load.py --spawn hold --sessions 1000
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent


class Client:
    """A minimal pipelining SMTP client over a trio stream (bench use only)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def reply(self) -> tuple[int, bytes]:
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise EOFError("server closed the connection")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"\n".join(lines)

    async def command(self, line: bytes, expect: int) -> bytes:
        await self.stream.send_all(line + b"\r\n")
        code, text = await self.reply()
        if code != expect:
            raise RuntimeError(f"{line[:20]!r}: expected {expect}, got {code} {text!r}")
        return text


@functools.cache
def client_context() -> ssl.SSLContext:
    """One context for every session: building one loads the system CA store, which
    costs ~40 ms of CPU and would make the generator, not the relay, the bottleneck."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the spawned relay's certificate is self-signed
    return context


async def open_session(args: argparse.Namespace, stream: trio.abc.Stream | None = None) -> Client:
    """EHLO, STARTTLS and AUTH on a new connection (or on ``stream``, already connected)."""
    if stream is None:
        stream = await trio.open_tcp_stream("127.0.0.1", args.port)
    client = Client(stream)
    code, _ = await client.reply()
    if code != 220:
        raise RuntimeError(f"greeting {code}")
    await client.command(b"EHLO bench.test", 250)
    if args.tls:
        await client.command(b"STARTTLS", 220)
        stream = trio.SSLStream(stream, client_context(), server_hostname="localhost")
        await stream.do_handshake()
        client = Client(stream)
        await client.command(b"EHLO bench.test", 250)
    if args.user and not getattr(args, "no_auth", False):
        blob = base64.b64encode(f"\0{args.user}\0{args.password}".encode())
        await client.command(b"AUTH PLAIN " + blob, 235)
    return client


def make_body(size: int) -> bytes:
    head = b"From: bench@bench.test\r\nTo: sink@example.net\r\nSubject: load\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = head + line * max(1, (size - len(head)) // len(line))
    return body + b".\r\n"


async def send_one(client: Client, body: bytes, latencies: list[float]) -> None:
    # MAIL, RCPT and DATA pipelined (RFC 2920), as real submission clients do.
    await client.stream.send_all(
        b"MAIL FROM:<bench@bench.test>\r\nRCPT TO:<sink@example.net>\r\nDATA\r\n"
    )
    for expect in (250, 250, 354):
        code, text = await client.reply()
        if code != expect:
            raise RuntimeError(f"expected {expect}, got {code} {text!r}")
    await client.stream.send_all(body)
    start = time.perf_counter()
    code, text = await client.reply()
    latencies.append(time.perf_counter() - start)
    if code != 250:
        raise RuntimeError(f"end of data: {code} {text!r}")


async def run_send(args: argparse.Namespace) -> dict[str, object]:
    body = make_body(args.size)
    latencies: list[float] = []
    errors: list[str] = []
    total = args.sessions * args.messages * max(1, args.connections // args.sessions if args.connections else 1)
    per_session_connections = max(1, args.connections // args.sessions) if args.connections else 1
    done = 0
    started = time.perf_counter()
    nonlocal_started = [0.0]

    ready = 0
    go = trio.Event()
    reuse = per_session_connections == 1
    # --rate: message i may start at (go + i / rate), whichever session takes it, so
    # the load is a steady rate below the maximum rather than as fast as possible.
    slots = {"next": 0, "origin": 0.0}

    async def pace() -> None:
        if args.rate > 0:
            if not slots["origin"]:
                slots["origin"] = trio.current_time()
            when = slots["origin"] + slots["next"] / args.rate
            slots["next"] += 1
            await trio.sleep_until(when)
    login_started = time.perf_counter()
    login_seconds = 0.0

    async def worker() -> None:
        nonlocal done, ready, login_seconds
        for _ in range(per_session_connections):
            try:
                client = await open_session(args)
                if reuse:
                    # Long-lived sessions: log everyone in first, so that the figures
                    # measure messages, not bcrypt (reported apart as login_seconds).
                    ready += 1
                    if ready == args.sessions:
                        login_seconds = time.perf_counter() - login_started
                        go.set()
                    await go.wait()
                for _ in range(args.messages):
                    await pace()
                    await send_one(client, body, latencies)
                    done += 1
                await client.stream.send_all(b"QUIT\r\n")
                await client.stream.aclose()
            except Exception as exc:  # counted and reported, the run goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                if reuse:
                    ready += 1
                    if ready == args.sessions:
                        go.set()

    async def progress() -> None:
        while True:
            await trio.sleep(1)
            rate = done / (time.perf_counter() - (nonlocal_started[0] or started))
            print(f"\r  {done}/{total} messages, {rate:,.0f}/s, errors {len(errors)}",
                  end="", file=sys.stderr, flush=True)

    with trio.move_on_after(args.max_seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress)
            async with trio.open_nursery() as workers:
                for _ in range(args.sessions):
                    workers.start_soon(worker)
                if reuse:
                    await go.wait()
                    nonlocal_started[0] = time.perf_counter()
            nursery.cancel_scope.cancel()
    elapsed = time.perf_counter() - (nonlocal_started[0] or started)
    print(file=sys.stderr)
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "mode": "send",
        "sessions": args.sessions,
        "messages": done,
        "connections": args.sessions * per_session_connections,
        "size": len(body),
        "tls": args.tls,
        "seconds": round(elapsed, 2),
        "login_seconds": round(login_seconds, 2) if reuse else None,
        "messages_per_s": round(done / elapsed, 1),
        "rate_asked": args.rate or None,
        "eod_to_250_ms": {"p50": round(q[49] * 1000, 1), "p95": round(q[94] * 1000, 1),
                          "p99": round(q[98] * 1000, 1)},
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def run_hold(args: argparse.Namespace) -> dict[str, object]:
    if not args.server_pid:
        raise SystemExit("hold needs --server-pid or --spawn")
    before = rss_kib(args.server_pid)
    clients: list[Client] = []
    errors: list[str] = []
    limiter = trio.CapacityLimiter(50)

    async def one() -> None:
        async with limiter:
            try:
                clients.append(await open_session(args))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    opened = time.perf_counter()
    with trio.move_on_after(args.max_seconds):
        async with trio.open_nursery() as nursery:
            for _ in range(args.sessions):
                nursery.start_soon(one)
    open_seconds = time.perf_counter() - opened
    await trio.sleep(1)
    after = rss_kib(args.server_pid)
    # Prove they are all alive: one NOOP each.
    alive = 0
    for c in clients:
        try:
            await c.command(b"NOOP", 250)
            alive += 1
        except Exception:
            pass
    for c in clients:
        await trio.aclose_forcefully(c.stream)
    return {
        "mode": "hold",
        "requested": args.sessions,
        "held_and_answering": alive,
        "seconds_to_open_all": round(open_seconds, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "rss_per_session_kib": round((after - before) / max(1, alive), 1),
    }


# ---------------------------------------------------------------- --spawn

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(
    args: argparse.Namespace, workdir: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    import pgserver  # the same embedded PostgreSQL the relay uses

    server = pgserver.get_server(workdir / "pg", cleanup_mode="stop")
    args._pg = server  # keep the handle alive
    url = server.get_uri()
    env = {
        **os.environ,
        "RELAY_DATABASE__URL": url,
        "RELAY_DATABASE__POOL_MAX_SIZE": "10",
        "RELAY_SMTP__LISTEN": f"127.0.0.1:{args.port}",
        "RELAY_SMTP__MAX_CONNECTIONS": str(max(1000, args.sessions + 10)),
        "RELAY_SMTP__HOSTNAME": "relay.bench",
        "RELAY_TLS__SELF_SIGNED_DIR": str(workdir / "tls"),
        "RELAY_LOGGING__LEVEL": "warning",
        # hold mode keeps sessions idle on purpose; don't let the idle timeout end them
        "RELAY_SMTP__COMMAND_TIMEOUT": "600" if args.mode == "hold" else "30",
        # The generator is one address; the per-address cap is for hostile clients.
        "RELAY_SMTP__PER_IP_EXEMPT_NETWORKS": "127.0.0.0/8",
        **(extra_env or {}),
    }
    subprocess.run([sys.executable, "-m", "relay", "migrate", "up"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    created = subprocess.run(
        [sys.executable, "-m", "relay", "accounts", "create", "--name", "bench",
         "--email", "bench@bench.test", "--allowed-domain", "bench.test", "--password-stdin"],
        env=env, input=b"bench-password\n", check=True, capture_output=True,
    )
    account = json.loads(created.stdout)
    if getattr(args, "webhook", False):
        import uuid

        import psycopg2  # yoyo's driver; the endpoint is never called (no worker runs)

        with psycopg2.connect(url) as db, db.cursor() as cur:
            cur.execute(
                "INSERT INTO webhook_endpoints (id, account_id, url, events, secret)"
                " VALUES (%s, %s, 'https://hooks.bench.test/', ARRAY['message.queued'], 'whsec_bench')",
                (str(uuid.uuid4()), account["id"]),
            )
    args.user, args.password = "bench@bench.test", "bench-password"
    proc = subprocess.Popen([sys.executable, "-m", "relay", "smtp"], env=env,
                            stderr=open(workdir / "relay.log", "wb"))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", args.port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"relay exited; see {workdir / 'relay.log'}")
            time.sleep(0.2)
    args.server_pid = proc.pid
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["send", "hold"])
    parser.add_argument("--port", type=int, default=2587)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--no-tls", dest="tls", action="store_false")
    parser.add_argument("--no-auth", action="store_true",
                        help="hold: sessions stop after EHLO (idle, unauthenticated)")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent sessions")
    parser.add_argument("--messages", type=int, default=20, help="messages per connection")
    parser.add_argument("--connections", type=int, default=0,
                        help="total connections (spread over the sessions); default one each")
    parser.add_argument("--size", type=int, default=2000, help="message size in bytes")
    parser.add_argument("--rate", type=float, default=0,
                        help="messages/s in all, paced (0 = as fast as the server answers)")
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--spawn", action="store_true", help="start a throwaway relay + database")
    parser.add_argument("--webhook", action="store_true",
                        help="with --spawn: give the bench account a webhook endpoint subscribed to"
                             " message.queued, so every accepted message also writes its event")
    args = parser.parse_args()

    proc = None
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        if args.spawn:
            args.port = free_port()
            proc = spawn(args, Path(tmp))
        try:
            result = trio.run(run_send if args.mode == "send" else run_hold, args)
            print(json.dumps(result, indent=2))
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
                args._pg.cleanup()


if __name__ == "__main__":
    main()
