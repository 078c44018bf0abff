"""Admin API against the framework's ceiling, measured with wrk (a C load generator).

Starts, on 127.0.0.1 only:

* an embedded PostgreSQL (pgserver, in a temporary directory);
* a ``relay`` API server in its own process, run the way ``relay api`` runs it
  (``relay.storage.host.run``: trio as the guest of an asyncio loop), with the
  per-key rate limit raised out of the way; an account, a provider and one queued
  message are created for it;
* a hello-world quart-trio app in a second process, served by hypercorn's trio worker
  with relay's own config (``relay.api.server.hypercorn_config``) and ASGI wrapper
  (``relay.api.asgi.ConnectionGuard``), answering ``GET /hello`` with a small JSON
  object under plain ``trio.run``: the framework's ceiling.

Then runs ``wrk -t2 -c8 -d10s --latency`` (threads, connections and duration
configurable) against each target in turn, interleaved (hello, providers, message,
hello, providers, message, ...) for ``--rounds`` rounds:

* ``hello``     ``GET /hello`` on the hello-world app;
* ``providers`` ``GET /api/v1/providers`` with ``Authorization: Bearer <account key>``
  (authentication: one lookup by key hash, + one list query);
* ``message``   ``GET /api/v1/messages/{id}`` with the same key (authentication + one
  lookup by id and account).

wrk's own summary is parsed from a Lua ``done`` hook (``WRK_DONE.lua`` below), which
also gives p95. Prints one line per run, then a table per round with the ratio
relay/hello, and the median ratios; the last line on stdout is a JSON object with all
the figures. The load generator shares the machine with the servers and PostgreSQL.

Needs ``wrk`` on PATH (Debian: ``apt-get install wrk``).

Examples:
  python bench/api_wrk.py
  python bench/api_wrk.py --rounds 2 --duration 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: wrk's ``done`` hook: one JSON line with what the table needs (latencies in µs).
WRK_DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
"""


# ---------------------------------------------------------------- the server processes


async def serve_relay(database_url: str, api_options: str) -> None:
    """Relay's API on 127.0.0.1:0; prints {"url", "operator_key"} once listening.

    Reads one line from stdin: an account id, for which one message is enqueued (its id
    is printed); then stops when stdin is closed.
    """
    import trio

    from relay import composition, models
    from relay.api.server import serve_api
    from relay.config import ApiConfig, Config, DatabaseConfig, LoggingConfig
    from relay.logging import configure
    from relay.storage import host

    config = Config(
        database=DatabaseConfig(url=database_url, pool_min_size=4, pool_max_size=10),
        # One key makes every request: lift the per-key limit out of the way.
        api=ApiConfig(listen="127.0.0.1:0", rate_limit_per_minute=100_000_000,
                      **json.loads(api_options)),
        logging=LoggingConfig(level="warning", format="json"),
    )
    configure(config.logging, stream=sys.stderr)
    async with composition.open_runtime(config) as runtime:
        key = await composition.ensure_operator_key(runtime.storage)
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(serve_api, runtime)
            import asyncio

            loop = host.host_loop_name(asyncio.get_running_loop())
            print(json.dumps({"url": bound.url, "operator_key": key, "host_loop": loop}), flush=True)
            line = await trio.to_thread.run_sync(sys.stdin.readline)
            import uuid

            message_id = await runtime.storage.messages.enqueue(models.NewMessage(
                account_id=uuid.UUID(line.strip()), mail_from="bench@bench.example",
                rcpt_to=("someone@example.net",),
                raw=b"From: bench@bench.example\r\nTo: someone@example.net\r\n"
                    b"Subject: bench\r\n\r\nbench\r\n"))
            print(json.dumps({"message_id": str(message_id)}), flush=True)
            # Stop when the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read)
            nursery.cancel_scope.cancel()


async def serve_hello() -> None:
    """A hello-world quart-trio app on relay's hypercorn config; prints {"url"}."""
    import trio
    from hypercorn.trio import serve
    from quart_trio import QuartTrio

    from relay.api.asgi import ConnectionGuard
    from relay.api.server import _bound, hypercorn_config

    hello = QuartTrio("hello")

    @hello.get("/hello")
    async def index() -> dict[str, Any]:
        return {"hello": "world", "n": 1}

    config = hypercorn_config("127.0.0.1:0")
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, ConnectionGuard(hello), config)
        print(json.dumps({"url": _bound(binds).url}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- wrk


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, script: str, url: str, headers: dict[str, str], args: argparse.Namespace,
            server_pid: int | None = None) -> dict[str, Any]:
    command = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
               "--latency", "--timeout", "5s", "-s", script]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    result = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 30, check=False)
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else None
    if result.returncode != 0:
        raise SystemExit(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"no WRK_JSON line in wrk's output:\n{result.stdout}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(raw["errors"].values())
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "requests_per_second": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p95_ms": round(raw["p95_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "errors": errors,
        "error_detail": raw["errors"],
        # The server process's CPU per answered request: steadier than requests/s on a
        # shared machine (it does not depend on how much of the cores the process got).
        "server_cpu_ms_per_request": round(cpu * 1000 / raw["requests"], 3) if cpu and raw["requests"] else None,
        # The 1-minute load average before the run (the 2 cores' other users show here).
        "loadavg_1m": round(load_before, 2),
    }


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    pid: int


def start(argv: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, __file__, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=15)
        raise SystemExit(f"{argv[0]} exited before it was ready ({process.returncode})")
    return process, json.loads(line)


def stop(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        process.stdin.close()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def measure(hello: Server, relay: Server, key: str, message_id: str | None,
            args: argparse.Namespace, wrk: str, script: str, guest: Server | None = None) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    targets: list[tuple[str, str, dict[str, str], int]] = [("hello", f"{hello.url}/hello", {}, hello.pid)]
    if guest is not None:
        targets.append(("hello_guest", f"{guest.url}/hello", {}, guest.pid))
    targets.append(("providers", f"{relay.url}/api/v1/providers", auth, relay.pid))
    if message_id is not None:
        targets.append(("message", f"{relay.url}/api/v1/messages/{message_id}", auth, relay.pid))
    # Warm-up: a short run per target (connections, pools, caches), not recorded.
    for name, url, headers, _ in targets:
        run_wrk(wrk, script, url, headers, argparse.Namespace(**{**vars(args), "duration": 2}))
    rounds: list[dict[str, Any]] = []
    for n in range(1, args.rounds + 1):
        row: dict[str, Any] = {"round": n}
        for name, url, headers, pid in targets:
            row[name] = run_wrk(wrk, script, url, headers, args, pid)
            r = row[name]
            print(f"round {n} {name:11} {r['requests_per_second']:9.1f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                  f"p90 {r['p90_ms']:6.2f}  p95 {r['p95_ms']:6.2f}  p99 {r['p99_ms']:6.2f}  "
                  f"cpu {r['server_cpu_ms_per_request']} ms/req  "
                  f"errors {r['errors']}  load {r['loadavg_1m']}", file=sys.stderr, flush=True)
        hello_rps = row["hello"]["requests_per_second"]
        for name, _, _, _ in targets[1:]:
            row[f"{name}_ratio"] = round(row[name]["requests_per_second"] / hello_rps, 3)
            if guest is not None and name != "hello_guest":
                row[f"{name}_guest_ratio"] = round(
                    row[name]["requests_per_second"] / row["hello_guest"]["requests_per_second"], 3)
        rounds.append(row)
    ratios = [k for k in rounds[0] if k.endswith("_ratio")]
    medians = {k: round(statistics.median(r[k] for r in rounds), 3) for k in ratios}
    for name, _, _, _ in targets:
        medians[f"{name}_cpu_ms"] = round(statistics.median(r[name]["server_cpu_ms_per_request"] for r in rounds), 3)
        medians[f"{name}_rps"] = round(statistics.median(r[name]["requests_per_second"] for r in rounds), 1)
        medians[f"{name}_p95_ms"] = round(statistics.median(r[name]["p95_ms"] for r in rounds), 2)
    return {"rounds": rounds, "median": medians, "targets": [t[0] for t in targets]}


def tree_state() -> str:
    """HEAD, and whether the working tree differs from it (the figures are for the tree)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "relay"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in relay/' if dirty else ''}"


def print_table(result: dict[str, Any]) -> None:
    names = result["targets"]
    print("| round | target | requests/s | p50 ms | p90 ms | p95 ms | p99 ms | server CPU ms/request | errors | relay/hello |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in result["rounds"]:
        for name in names:
            r = row[name]
            ratio = f"{row[name + '_ratio']:.2f}×" if name != "hello" else ""
            if f"{name}_guest_ratio" in row:
                ratio += f" ({row[name + '_guest_ratio']:.2f}× hello_guest)"
            print(f"| {row['round']} | {name} | {r['requests_per_second']:.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p90_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_ms_per_request']} | {r['errors']} | {ratio} |")
    m = result["median"]
    print("median: " + ", ".join(f"{k} {v}" for k, v in m.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-message", action="store_true", help="skip GET /api/v1/messages/{id}")
    parser.add_argument("--key-cache-ttl", type=float, metavar="SECONDS",
                        help="relay's api.key_cache_ttl (0 = off; default: relay's own); needs a relay with the key cache")
    parser.add_argument("--api-options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--serve-relay", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--serve-hello", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hello-guest", action="store_true",
                        help="also serve hello with trio as the guest of asyncio, as relay runs "
                             "(relay.storage.host.run), and give relay's ratio to it too")
    args = parser.parse_args()

    if args.serve_relay:
        from relay.storage import host

        host.run(serve_relay, args.serve_relay, args.api_options)
        return
    if args.serve_hello:
        if args.guest:
            from relay.storage import host

            host.run(serve_hello)  # as relay runs: trio as the guest of an asyncio loop
            return
        import trio

        trio.run(serve_hello)
        return
    if not (1 <= args.rounds <= 10 and 1 <= args.duration <= 120 and 1 <= args.connections <= 1000
            and 1 <= args.threads <= args.connections):
        raise SystemExit("--rounds 1-10, --duration 1-120, --connections 1-1000, --threads 1-connections")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not on PATH (Debian: apt-get install wrk)")

    import httpx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    from relay.storage import migrations

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        script = str(Path(tmp) / "done.lua")
        Path(script).write_text(WRK_DONE_LUA)
        database = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            url = database.get_uri()
            migrations.apply(url)
            api_options = {} if args.key_cache_ttl is None else {"key_cache_ttl": args.key_cache_ttl}
            relay, ready = start(["--serve-relay", url, "--api-options", json.dumps(api_options)])
            try:
                hello, hello_ready = start(["--serve-hello"])
                guest, guest_ready = start(["--serve-hello", "--guest"]) if args.hello_guest else (None, {})
                try:
                    base = ready["url"]
                    account = httpx.post(f"{base}/api/v1/accounts", headers={
                        "Authorization": f"Bearer {ready['operator_key']}"}, json={
                        "name": "bench", "email": "bench@bench.example", "password": "bench-password",
                        "allowed_domains": ["bench.example"]}, timeout=30)
                    account.raise_for_status()
                    body = account.json()
                    key = body["api_key"]
                    account_id = body.get("id") or body.get("account", {}).get("id")
                    auth = {"Authorization": f"Bearer {key}"}
                    httpx.post(f"{base}/api/v1/providers", headers=auth, json={
                        "name": "bench", "type": "sendgrid", "config": {"api_key": "bench-not-a-key"},
                    }, timeout=30).raise_for_status()
                    assert relay.stdin is not None and relay.stdout is not None
                    relay.stdin.write(f"{account_id}\n")
                    relay.stdin.flush()
                    message_id = json.loads(relay.stdout.readline())["message_id"]
                    for check in (f"{base}/api/v1/providers", f"{base}/api/v1/messages/{message_id}"):
                        httpx.get(check, headers=auth, timeout=30).raise_for_status()
                    httpx.get(f"{hello_ready['url']}/hello", timeout=30).raise_for_status()
                    print(f"relay {base} (host loop {ready['host_loop']}), hello {hello_ready['url']}, "
                          f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, "
                          f"api options {api_options or 'defaults'}, tree {tree_state()}", file=sys.stderr, flush=True)
                    result = measure(Server(hello_ready["url"], hello.pid), Server(base, relay.pid), key,
                                     None if args.no_message else message_id, args, wrk, script,
                                     guest=Server(guest_ready["url"], guest.pid) if guest is not None else None)
                finally:
                    if guest is not None:
                        stop(guest)
                    stop(hello)
            finally:
                stop(relay)
        finally:
            database.cleanup()
    result.update({
        "tree": tree_state(), "api_options": api_options,
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s --latency",
        "host_loop": ready["host_loop"], "cpus": os.cpu_count(),
        "python": platform.python_version(), "seconds": round(time.monotonic() - started, 1),
    })
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
