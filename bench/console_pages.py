"""Web console: server time of the overview and messages pages with a full queue.

Fills a fresh database with ``--messages`` queued messages (default 10,000; 80 % in one
tenant, 20 % in another), all accepted within the last hour — the worst case for the
per-minute chart, which then counts every row — or, with ``--spread-hours H``, spread
evenly over the last H hours (the chart's range scan then reads about 1/H of them;
bench-only SQL through psycopg2, outside ``relay``), then renders each page
``--runs`` times through quart's in-process test client, signed in as an operator and
as the big tenant. The time measured is the app's: session check, key re-check (served
by the key cache after the first request, as in production), the storage crossing and
the template — no socket, no browser. One JSON object on stdout: p50/p95/max in ms per
page; with ``--explain``, the plans of the page queries as PostgreSQL chose them.

The database is an embedded PostgreSQL (pgserver) in a temporary directory unless
``--database-url`` names one (its contents are replaced: use a scratch database).

Examples:
  python bench/console_pages.py
  python bench/console_pages.py --messages 100000 --runs 20 --explain
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The budget the issue sets for one page, server time.
BUDGET_MS = 50.0
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


async def fill(storage: Any, account_ids: list[uuid.UUID], count: int) -> None:
    from relay import models

    batch: list[models.NewMessage] = []
    for n in range(count):
        account_id = account_ids[0] if n % 5 else account_ids[1]
        batch.append(models.NewMessage(
            account_id=account_id, mail_from="sender@example.com",
            rcpt_to=(f"user{n % 997}@example.net",),
            raw=b"From: sender@example.com\r\nSubject: bench %d\r\n\r\nbody\r\n" % n,
            message_id=f"<{n}@bench>", client_ip="127.0.0.1", tls=True,
        ))
        if len(batch) == 1000:
            await storage.messages.enqueue_many(batch)
            batch = []
    if batch:
        await storage.messages.enqueue_many(batch)


async def sign_in(client: Any, key: str) -> None:
    page = await (await client.get("/console/sign-in")).get_data(as_text=True)
    csrf = _CSRF.search(page)
    assert csrf is not None
    response = await client.post("/console/sign-in", form={"csrf": csrf.group(1), "key": key})
    assert response.status_code == 303, response.status_code


async def measure(client: Any, path: str, runs: int) -> dict[str, float]:
    times = []
    for _ in range(3):  # warm: prepared statements, template compilation, key cache
        await client.get(path)
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path)
        await response.get_data()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
        "max_ms": round(times[-1], 1),
    }


def spread(database_url: str, hours: float) -> None:
    """Move the messages' acceptance times evenly over the last ``hours``."""
    import psycopg2

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE messages SET created_at = now() - random() * make_interval(secs => %s)",
            (hours * 3600,),
        )


def analyze(database_url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(database_url)
    conn.autocommit = True  # VACUUM cannot run in a transaction
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE messages")
    conn.close()


def explain(database_url: str, tenant: uuid.UUID) -> dict[str, list[str]]:
    """The plans of the console's page queries (psycopg2: bench-only, outside relay)."""
    import psycopg2

    queries = {
        "per_minute (operator)": (
            "SELECT date_trunc('minute', created_at), count(*) FROM messages"
            " WHERE created_at >= now() - interval '1 hour' GROUP BY 1 ORDER BY 1", ()),
        "per_minute (tenant)": (
            "SELECT date_trunc('minute', created_at), count(*) FROM messages"
            " WHERE created_at >= now() - interval '1 hour' AND account_id = %s GROUP BY 1 ORDER BY 1",
            (str(tenant),)),
        "queue summary (operator)": (
            "SELECT status, count(*), min(created_at) FROM messages"
            " WHERE status IN ('queued', 'deferred') GROUP BY status"
            " UNION ALL SELECT status, count(*), min(created_at) FROM messages"
            " WHERE status = 'sending' GROUP BY status"
            " UNION ALL SELECT status, count(*), NULL FROM messages"
            " WHERE status IN ('sent', 'failed') AND updated_at >= now() - interval '1 hour'"
            " GROUP BY status", ()),
        "messages page (operator)": (
            "SELECT id FROM messages ORDER BY created_at DESC, id DESC LIMIT 51", ()),
        "messages page (tenant)": (
            "SELECT id FROM messages WHERE account_id = %s ORDER BY created_at DESC, id DESC LIMIT 51",
            (str(tenant),)),
    }
    plans = {}
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        for name, (sql, params) in queries.items():
            cur.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
            plans[name] = [row[0] for row in cur.fetchall()]
    return plans


async def main(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from relay import composition, hashed_secrets
    from relay.api.app import create_app
    from relay.config import ApiConfig, Config, ConsoleConfig, DatabaseConfig, LoggingConfig
    from relay.logging import configure

    config = Config(
        database=DatabaseConfig(url=database_url, pool_min_size=2, pool_max_size=4),
        api=ApiConfig(listen="127.0.0.1:0", rate_limit_per_minute=100_000_000),
        console=ConsoleConfig(session_key="bench"),
        logging=LoggingConfig(level="warning", format="json"),
    )
    configure(config.logging, stream=sys.stderr)
    async with composition.open_runtime(config) as runtime:
        storage = runtime.storage
        operator_key = await composition.ensure_operator_key(storage)
        assert operator_key is not None, "use a fresh database: it already has an operator key"
        tenants = []
        for name in ("big", "small"):
            key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
            account = await storage.accounts.create(
                name=name, email=f"{name}@example.com", password_hash="x",
                api_key_hash=key.hash, api_key_prefix=key.prefix, allowed_domains=("example.com",),
            )
            tenants.append((account.id, key.secret))
        started = time.perf_counter()
        await fill(storage, [t[0] for t in tenants], args.messages)
        if args.spread_hours:
            await trio.to_thread.run_sync(spread, database_url, args.spread_hours)
        # What autovacuum does after such a burst of inserts; without statistics the
        # planner does not know one tenant holds most rows and sorts them all.
        await trio.to_thread.run_sync(analyze, database_url)
        filled = time.perf_counter() - started
        results: dict[str, Any] = {
            "messages": args.messages, "spread_hours": args.spread_hours, "runs": args.runs, "fill_seconds": round(filled, 1),
            "budget_ms": BUDGET_MS, "pages": {},
        }
        pages = ("/console/", "/console/messages", "/console/messages?status=queued",
                 "/console/messages?recipient=user5@example.net")
        for who, key in (("operator", operator_key), ("tenant", tenants[0][1])):
            client = create_app(runtime).test_client()
            await sign_in(client, key)
            for path in pages:
                results["pages"][f"{who} {path}"] = await measure(client, path, args.runs)
        # The budget is for the overview and the (unfiltered) messages page; the
        # recipient filter is the one not served by an index, reported beside them.
        results["within_budget"] = all(
            r["p95_ms"] < BUDGET_MS for name, r in results["pages"].items()
            if name.endswith(("/console/", "/console/messages"))
        )
        if args.explain:
            results["plans"] = explain(database_url, tenants[0][0])
        return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database-url", help="a scratch PostgreSQL database (default: embedded)")
    parser.add_argument("--spread-hours", type=float, default=0.0,
                        help="accepted over the last H hours instead of the last one")
    parser.add_argument("--explain", action="store_true", help="also print the queries' plans")
    args = parser.parse_args()
    if not 1 <= args.messages <= 10_000_000 or not 1 <= args.runs <= 10_000:
        raise SystemExit("--messages must be 1-10000000 and --runs 1-10000")
    from relay.storage import host

    if args.database_url:
        print(json.dumps(host.run(main, args, args.database_url), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="relay-console-bench-") as where:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(Path(where), cleanup_mode="stop")
        try:
            print(json.dumps(host.run(main, args, server.get_uri()), indent=2))
        finally:
            server.cleanup()


if __name__ == "__main__":
    cli()
