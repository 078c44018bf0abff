"""Hostile-client figures for the hardening targets, against a spawned `relay smtp`.

Modes:
  trickle  --connections N (default 3000) from 127.0.0.1, each sending one byte every
           --interval seconds and reconnecting whenever the relay closes it, for
           --seconds; meanwhile a well-behaved client from 127.0.0.2 connects,
           STARTTLS, AUTH and submits one message every 2 s. Prints the probe's
           connect-to-250 times (target: every one within 1 s) and how the relay
           answered the flood.
  memory   --sessions N (default 200) concurrent clients each send one message of
           --size octets (default 5 MB; SIZE declared unless --no-size), with
           smtp.memory_budget = --budget (default 256 MiB). Prints the relay's RSS
           before and its peak (VmHWM) during the run, and the replies (target: peak
           <= baseline + 1.25 x budget; refused ones get 452 4.3.1, at DATA when SIZE
           was declared).

The relay runs with its defaults (smtp.max_connections_per_ip = 50, no exemptions),
its own embedded PostgreSQL and a throwaway directory. Traffic stays on loopback and
every run is bounded by --seconds / its counts.

Examples:
  python bench/smtp_hostile.py trickle --connections 3000 --seconds 45
  python bench/smtp_hostile.py memory --sessions 200 --size 5000000
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_load import Client, free_port, open_session, spawn

PROBE_SOURCE = "127.0.0.2"


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


async def connect(args: argparse.Namespace, source: str | None = None) -> trio.SocketStream:
    sock = trio.socket.socket()
    if source:
        await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", args.port))
    return trio.SocketStream(sock)


# ---------------------------------------------------------------- trickle


async def run_trickle(args: argparse.Namespace) -> dict[str, object]:
    counts = {"greeted": 0, "refused_421": 0, "closed_by_relay": 0, "connect_errors": 0}
    probes: list[float] = []
    failures: list[str] = []

    async def trickler(delay: float) -> None:
        await trio.sleep(delay)
        while True:
            try:
                stream = await connect(args)
            except OSError:
                counts["connect_errors"] += 1
                await trio.sleep(1)
                continue
            try:
                first = await stream.receive_some(512)
                if first.startswith(b"421"):
                    counts["refused_421"] += 1
                    await trio.sleep(args.interval)  # an attacker retries
                    continue
                counts["greeted"] += 1
                while True:
                    await stream.send_all(b"N")
                    with trio.move_on_after(args.interval):
                        if not await stream.receive_some(512):
                            counts["closed_by_relay"] += 1
                            break
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                counts["closed_by_relay"] += 1
            finally:
                await stream.aclose()

    async def probe() -> None:
        await trio.sleep(args.interval)  # let the flood build up first
        while True:
            start = time.perf_counter()
            try:
                with trio.fail_after(30):
                    stream = await connect(args, PROBE_SOURCE)
                    client = await open_session(args, stream=stream)
                    await client.command(b"MAIL FROM:<bench@bench.test>", 250)
                    await client.command(b"RCPT TO:<sink@example.net>", 250)
                    await client.command(b"DATA", 354)
                    await client.command(b"From: bench@bench.test\r\n\r\nprobe\r\n.", 250)
                    await client.stream.aclose()
                probes.append(time.perf_counter() - start)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            await trio.sleep(2)

    with trio.move_on_after(args.seconds):
        async with trio.open_nursery() as nursery:
            for i in range(args.connections):
                # Ramp up over the first interval so the relay sees a flood, not one burst.
                nursery.start_soon(trickler, args.interval * i / args.connections)
            nursery.start_soon(probe)
    return {
        "mode": "trickle",
        "connections": args.connections,
        "interval_s": args.interval,
        "seconds": args.seconds,
        "flood": counts,
        "probe_submissions": len(probes),
        "probe_failures": failures[:5],
        "probe_max_s": round(max(probes), 3) if probes else None,
        "probe_median_s": round(statistics.median(probes), 3) if probes else None,
    }


# ---------------------------------------------------------------- memory


async def run_memory(args: argparse.Namespace) -> dict[str, object]:
    line = b"x" * 76 + b"\r\n"
    head = b"From: bench@bench.test\r\nTo: sink@example.net\r\nSubject: big\r\n\r\n"
    body = head + line * ((args.size - len(head)) // len(line)) + b".\r\n"
    size_param = f" SIZE={len(body)}".encode() if args.size_declared else b""
    replies: dict[str, int] = {}

    async def one(client: Client) -> None:
        try:
            await client.stream.send_all(
                b"MAIL FROM:<bench@bench.test>" + size_param + b"\r\nRCPT TO:<sink@example.net>\r\nDATA\r\n"
            )
            await client.reply()
            await client.reply()
            code, _ = await client.reply()
            if code == 354:
                view = memoryview(body)
                for i in range(0, len(body), 65536):
                    await client.stream.send_all(view[i:i + 65536])
                code, _ = await client.reply()
                key = f"{code} after data"
            else:
                key = f"{code} at DATA"
            replies[key] = replies.get(key, 0) + 1
        finally:
            await client.stream.aclose()

    # Warm up (TLS, AUTH, the pool, one small message) before reading the baseline.
    warm = await open_session(args)
    await warm.command(b"MAIL FROM:<bench@bench.test>", 250)
    await warm.command(b"RCPT TO:<sink@example.net>", 250)
    await warm.command(b"DATA", 354)
    await warm.command(b"From: bench@bench.test\r\n\r\nwarm\r\n.", 250)
    await warm.stream.aclose()
    start = time.perf_counter()
    baseline = status_kib(args.server_pid, "VmRSS")
    # Log every session in first, 20 at a time (TLS and AUTH are not under test), then
    # send every message at once.
    clients: list[Client] = []
    limiter = trio.CapacityLimiter(20)

    async def login() -> None:
        async with limiter:
            clients.append(await open_session(args))

    async with trio.open_nursery() as nursery:
        for _ in range(args.sessions):
            nursery.start_soon(login)
    with trio.fail_after(args.seconds):
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(one, client)
    elapsed = time.perf_counter() - start
    peak = status_kib(args.server_pid, "VmHWM")
    budget_kib = args.budget // 1024
    return {
        "mode": "memory",
        "sessions": args.sessions,
        "message_octets": len(body),
        "size_declared": args.size_declared,
        "budget_mib": round(args.budget / 2**20, 1),
        "replies": replies,
        "seconds": round(elapsed, 1),
        "rss_baseline_mib": round(baseline / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "peak_over_baseline_in_budgets": round((peak - baseline) / budget_kib, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["trickle", "memory"])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between trickled bytes")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--size", type=int, default=5_000_000)
    parser.add_argument("--no-size", dest="size_declared", action="store_false")
    parser.add_argument("--budget", type=int, default=256 * 2**20)
    args = parser.parse_args()
    args.tls, args.user, args.password = True, "", ""
    extra = {
        # spawn() exempts loopback for the throughput bench; here the per-address
        # cap is the thing under test, so restore the default (nothing exempt).
        "RELAY_SMTP__PER_IP_EXEMPT_NETWORKS": "[]",
        "RELAY_SMTP__MEMORY_BUDGET": str(args.budget),
        "RELAY_SMTP__MAX_MESSAGE_SIZE": str(max(args.size * 2, 26214400)),
    }
    if args.mode == "memory":
        extra["RELAY_SMTP__PER_IP_EXEMPT_NETWORKS"] = "127.0.0.0/8"
    with tempfile.TemporaryDirectory(prefix="relay-hostile-") as tmp:
        args.port = free_port()
        spawned = argparse.Namespace(**{**vars(args), "mode": "send"})
        proc = spawn(spawned, Path(tmp), extra)
        args.user, args.password, args.server_pid = "bench@bench.test", "bench-password", proc.pid
        try:
            result = trio.run(run_trickle if args.mode == "trickle" else run_memory, args)
            result["relay_alive"] = proc.poll() is None
            print(json.dumps(result, indent=2))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            spawned._pg.cleanup()


if __name__ == "__main__":
    main()
