"""Three ways to reach asyncpg, side by side: queries/s from 20 tasks over a 20-connection pool.

Each task does ``--count / --tasks`` round trips of ``SELECT $1``, each with its own
pooled connection. The asyncio side is the same in every mode — relay's
``Bridge.with_connection`` (acquire within the acquire timeout, query, release), what
one ``Bridge.run`` does on the host loop — so the figures differ only by the crossing:

- ``asyncio``: plain asyncio tasks (``asyncio.run``): the ceiling.
- ``trio-asyncio``: trio tasks crossing with ``aio_as_trio`` on a trio-asyncio loop,
  what ``relay/storage/_bridge.py`` did before guest mode. Needs ``trio-asyncio``
  (no longer a dependency of relay: ``pip install trio-asyncio`` to include it);
  skipped when it is not installed.
- ``guest``: trio as a guest of the asyncio host loop through relay's own code
  (``relay.storage.host.run``, ``open_storage``, ``Bridge.run``), as ``relay serve`` runs.
- ``uvloop`` and ``guest-uvloop``: the same two on uvloop's loop, when uvloop is installed.

Every mode runs in a subprocess of its own (trio-asyncio changes asyncio's event loop
policy on import), ``--rounds`` times, interleaved; the median round is reported.
It starts its own embedded PostgreSQL (pgserver, in a temporary directory) unless
given ``--url``. Only 127.0.0.1 / a local socket is used; bounded by ``--count``.

Examples:
  python bench/bridge_bench.py
  python bench/bridge_bench.py --count 40000 --rounds 5
  python bench/bridge_bench.py --url postgresql://postgres@/postgres?host=/tmp/pg
"""

from __future__ import annotations

import argparse
import json
import os
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

MODES = ("asyncio", "trio-asyncio", "guest", "uvloop", "guest-uvloop")
QUERY = "SELECT $1::int"


def _pool_options(size: int) -> dict[str, Any]:
    from relay.storage import _init_connection, _reset_connection

    return {"min_size": size, "max_size": size, "init": _init_connection, "reset": _reset_connection}


# ------------------------------------------------------------------ one mode, in this process


ACQUIRE_TIMEOUT = 10.0


def run_asyncio(url: str, count: int, tasks: int, loop_factory: Any = None) -> float:
    import asyncio

    import asyncpg

    from relay.storage._bridge import Bridge

    async def main() -> float:
        async with asyncpg.create_pool(url, **_pool_options(tasks)) as pool:
            bridge = Bridge(asyncio.get_running_loop(), pool, ACQUIRE_TIMEOUT)

            async def one(conn: Any, i: int) -> Any:
                return await conn.fetchval(QUERY, i)

            async def worker(n: int) -> None:
                for i in range(n):
                    assert await bridge.with_connection(one, i) == i

            start = time.perf_counter()
            await asyncio.gather(*(worker(count // tasks) for _ in range(tasks)))
            return time.perf_counter() - start

    if loop_factory is None:
        return asyncio.run(main())
    loop = loop_factory()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def run_trio_asyncio(url: str, count: int, tasks: int) -> float:
    import asyncpg
    import trio
    import trio_asyncio

    from relay.storage._bridge import Bridge

    async def main() -> float:
        async with trio_asyncio.open_loop() as loop:
            pool = await loop.run_aio_coroutine(asyncpg.create_pool(url, **_pool_options(tasks)))
            bridge = Bridge(loop, pool, ACQUIRE_TIMEOUT)

            async def one(conn: Any, i: int) -> Any:
                return await conn.fetchval(QUERY, i)

            async def worker(n: int) -> None:
                for i in range(n):
                    # What relay's Bridge did before guest mode: one run_aio_coroutine per call.
                    assert await loop.run_aio_coroutine(bridge.with_connection(one, i)) == i

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(tasks):
                    nursery.start_soon(worker, count // tasks)
            elapsed = time.perf_counter() - start
            await loop.run_aio_coroutine(pool.close())
            return elapsed

    return trio.run(main)


def run_guest(url: str, count: int, tasks: int) -> float:
    import trio

    from relay.storage import host, open_storage

    async def main() -> float:
        async with open_storage(url, min_size=tasks, max_size=tasks) as storage:
            bridge = storage._bridge

            async def one(conn: Any, i: int) -> Any:
                return await conn.fetchval(QUERY, i)

            async def worker(n: int) -> None:
                for i in range(n):
                    assert await bridge.run(one, i) == i

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(tasks):
                    nursery.start_soon(worker, count // tasks)
            return time.perf_counter() - start

    return host.run(main)


def run_mode(mode: str, url: str, count: int, tasks: int) -> dict[str, Any]:
    if mode == "asyncio":
        elapsed = run_asyncio(url, count, tasks)
    elif mode == "uvloop":
        import uvloop

        elapsed = run_asyncio(url, count, tasks, loop_factory=uvloop.new_event_loop)
    elif mode == "trio-asyncio":
        elapsed = run_trio_asyncio(url, count, tasks)
    elif mode == "guest":
        os.environ["RELAY_UVLOOP"] = "0"
        elapsed = run_guest(url, count, tasks)
    elif mode == "guest-uvloop":
        os.environ["RELAY_UVLOOP"] = "1"
        elapsed = run_guest(url, count, tasks)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    done = (count // tasks) * tasks
    return {"mode": mode, "queries": done, "seconds": round(elapsed, 3),
            "queries_per_s": round(done / elapsed)}


# ------------------------------------------------------------------ the comparison


def available(mode: str) -> bool:
    module = {"trio-asyncio": "trio_asyncio", "uvloop": "uvloop", "guest-uvloop": "uvloop"}.get(mode)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def compare(url: str, args: argparse.Namespace) -> dict[str, Any]:
    modes = [m for m in args.modes if available(m)]
    rounds: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            out = subprocess.run(
                [sys.executable, __file__, "--one", mode, "--url", url,
                 "--count", str(args.count), "--tasks", str(args.tasks)],
                check=True, capture_output=True, text=True, timeout=600,
            )
            rounds[mode].append(json.loads(out.stdout))
    result: dict[str, Any] = {
        "count": args.count, "tasks": args.tasks, "pool_size": args.tasks,
        "rounds": args.rounds, "skipped": [m for m in args.modes if m not in modes],
        "queries_per_s": {}, "all_rounds": {},
    }
    for mode, runs in rounds.items():
        rates = [r["queries_per_s"] for r in runs]
        result["queries_per_s"][mode] = round(statistics.median(rates))
        result["all_rounds"][mode] = rates
    qps = result["queries_per_s"]
    ratios = {}
    if "guest" in qps and "asyncio" in qps:
        ratios["guest / asyncio"] = round(qps["guest"] / qps["asyncio"], 2)
    if "guest" in qps and "trio-asyncio" in qps:
        ratios["guest / trio-asyncio"] = round(qps["guest"] / qps["trio-asyncio"], 2)
    if "guest-uvloop" in qps and "uvloop" in qps:
        ratios["guest-uvloop / uvloop"] = round(qps["guest-uvloop"] / qps["uvloop"], 2)
    if "guest-uvloop" in qps and "guest" in qps:
        ratios["guest-uvloop / guest"] = round(qps["guest-uvloop"] / qps["guest"], 2)
    result["ratios"] = ratios
    return result


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL URL (default: a throwaway embedded server)")
    parser.add_argument("--count", type=int, default=20_000, help="queries per mode and round")
    parser.add_argument("--tasks", type=int, default=20, help="concurrent tasks = pool size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.tasks <= 100 or not args.tasks <= args.count <= 1_000_000:
        raise SystemExit("--tasks must be 1-100 and --count between --tasks and 1000000")
    return args


def main() -> None:
    args = parse(sys.argv[1:])
    if args.one:
        print(json.dumps(run_mode(args.one, args.url, args.count, args.tasks)))
        return
    if args.url:
        print(json.dumps(compare(args.url, args), indent=2))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            print(json.dumps(compare(server.get_uri(), args), indent=2))
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
