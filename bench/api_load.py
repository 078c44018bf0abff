"""Admin API load generator: requests/s and p50/p95/p99 latency at a fixed concurrency.

Two phases, each bounded by ``--requests`` and ``--max-seconds``:

* GET  ``/api/v1/providers`` with an account key (authentication + one list query);
* POST ``/api/v1/routing-rules`` with an account key (body validation, condition
  parsing, one transaction).

By default the script starts everything itself: an embedded PostgreSQL (pgserver, in a
temporary directory) and a ``relay`` API server in a **separate process**
(``--serve``), so the load generator and the server do not share one event loop. It
creates an account through the API with the bootstrap operator key, and a provider for
the rules. With ``--url`` and ``--key`` (an account key) it runs against an API that is
already up instead. Only loopback addresses are accepted.

A progress line is printed to stderr once a second; the result is one JSON object on
stdout.

Examples:
  python bench/api_load.py
  python bench/api_load.py --concurrency 32 --requests 5000
  python bench/api_load.py --url http://127.0.0.1:8080 --key rk_live_...
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- the server process


async def serve(database_url: str) -> None:
    """Run the API on 127.0.0.1:0; print {"url", "operator_key"} once listening."""
    from relay import composition
    from relay.api.server import serve_api
    from relay.config import ApiConfig, Config, DatabaseConfig, LoggingConfig
    from relay.logging import configure

    config = Config(
        database=DatabaseConfig(url=database_url, pool_min_size=4, pool_max_size=10),
        # One key makes every request: lift the per-key limit out of the way.
        api=ApiConfig(listen="127.0.0.1:0", rate_limit_per_minute=100_000_000),
        logging=LoggingConfig(level="warning", format="json"),
    )
    configure(config.logging, stream=sys.stderr)
    async with composition.open_runtime(config) as runtime:
        key = await composition.ensure_operator_key(runtime.storage)
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(serve_api, runtime)
            print(json.dumps({"url": bound.url, "operator_key": key}), flush=True)
            # Stop when the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read)
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- load


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def phase(
    client: httpx.AsyncClient, name: str, make_request: Any, *, requests: int,
    concurrency: int, max_seconds: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal issued
        while issued < requests:
            issued += 1
            t0 = time.perf_counter()
            try:
                response = await make_request(client, issued)
                ok = response.status_code < 400
                label = str(response.status_code)
            except httpx.HTTPError as exc:
                ok, label = False, type(exc).__name__
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[label] = errors.get(label, 0) + 1

    async def progress() -> None:
        while True:
            await trio.sleep(1)
            elapsed = time.perf_counter() - started
            done = len(latencies) + sum(errors.values())
            print(f"\r{name}: {done}/{requests} requests, {done / elapsed:7.1f} req/s, "
                  f"{sum(errors.values())} errors", end="", file=sys.stderr, flush=True)

    with trio.move_on_after(max_seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress)
            async with trio.open_nursery() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker)
            nursery.cancel_scope.cancel()
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    latencies.sort()
    return {
        "phase": name,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
    }


async def run_load(url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        created = await client.post("/api/v1/providers", json={
            "name": "bench", "type": "sendgrid", "config": {"api_key": "bench-not-a-key"}})
        created.raise_for_status()
        provider_id = created.json()["id"]

        async def get(c: httpx.AsyncClient, n: int) -> httpx.Response:
            return await c.get("/api/v1/providers")

        async def post(c: httpx.AsyncClient, n: int) -> httpx.Response:
            return await c.post("/api/v1/routing-rules", json={
                "name": f"bench {n}", "priority": n % 1000, "provider_id": provider_id,
                "conditions": {"any": [{"recipient_domain": {"suffix": "example.net"}},
                                       {"header": {"name": "X-Campaign", "equals": f"c{n}"}}]},
            })

        results = []
        for name, make in (("GET /api/v1/providers", get), ("POST /api/v1/routing-rules", post)):
            results.append(await phase(client, name, make, requests=args.requests,
                                       concurrency=args.concurrency, max_seconds=args.max_seconds))
    return {"concurrency": args.concurrency, "phases": results}


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"--url {url}: only loopback addresses (127.0.0.1, ::1, localhost) are allowed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000, help="per phase (default 3000)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per phase (default 60)")
    parser.add_argument("--url", help="an API already running on loopback")
    parser.add_argument("--key", help="an account key for --url")
    parser.add_argument("--serve", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 1000 or not 1 <= args.requests <= 1_000_000:
        raise SystemExit("--concurrency must be 1-1000 and --requests 1-1000000")

    if args.serve:
        # The relay process's own entry: trio as the guest of an asyncio host loop.
        from relay.storage import host

        host.run(serve, args.serve)
        return
    if args.url:
        if not args.key:
            raise SystemExit("--url needs --key (an account key, rk_live_...)")
        require_loopback(args.url)
        print(json.dumps(trio.run(run_load, args.url, args.key, args), indent=2))
        return

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    from relay.storage import migrations

    with tempfile.TemporaryDirectory() as tmp:
        database = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            url = database.get_uri()
            migrations.apply(url)
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", url], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                assert server.stdout is not None and server.stdin is not None
                ready = json.loads(server.stdout.readline())
                account = httpx.post(f"{ready['url']}/api/v1/accounts", headers={
                    "Authorization": f"Bearer {ready['operator_key']}"}, json={
                    "name": "bench", "email": "bench@bench.example", "password": "bench-password",
                    "allowed_domains": ["bench.example"]}, timeout=30)
                account.raise_for_status()
                result = trio.run(run_load, ready["url"], account.json()["api_key"], args)
                print(json.dumps(result, indent=2))
            finally:
                if server.stdin is not None:
                    server.stdin.close()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
        finally:
            database.cleanup()


if __name__ == "__main__":
    main()
