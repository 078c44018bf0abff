"""What the suppression check adds to each RCPT TO: one ``storage.suppressions.matching``
crossing, timed against ``storage.ping`` (``SELECT 1``, the floor of any crossing).

It starts its own embedded PostgreSQL (pgserver, in a temporary directory) unless
``--url`` is given, migrates it, fills ``--accounts`` accounts with ``--entries``
suppression entries in all, then makes ``--lookups`` sequential lookups of each kind
from one trio task (as one SMTP session does) and prints the latency percentiles.

    python bench/suppression_lookup.py --entries 100000 --lookups 5000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay import hashed_secrets
from relay.storage import host, migrations, open_storage


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    pick = lambda q: round(samples[min(len(samples) - 1, int(q * len(samples)))] * 1e6, 1)  # noqa: E731
    return {"p50_us": pick(0.50), "p95_us": pick(0.95), "p99_us": pick(0.99),
            "mean_us": round(statistics.fmean(samples) * 1e6, 1)}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    async with open_storage(url, min_size=1, max_size=2) as storage:
        key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
        accounts = []
        for i in range(args.accounts):
            accounts.append(await storage.accounts.create(
                name=f"bench {i}", email=f"bench{i}@bench.test", password_hash="x",
                api_key_hash=hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX).hash, api_key_prefix=key.prefix,
                allowed_domains=("bench.test",),
            ))

        async def fill(conn: Any) -> None:
            await conn.execute(
                """INSERT INTO suppressions (id, account_id, address, reason, source)
                   SELECT gen_random_uuid(), ($1::uuid[])[1 + i % cardinality($1::uuid[])],
                          'user' || i || '@example.net', '', 'manual'
                   FROM generate_series(1, $2) AS i""",
                [a.id for a in accounts], args.entries,
            )
            await conn.execute("ANALYZE suppressions")

        await storage._bridge.run(fill)  # bench only: bulk rows without the per-entry event
        target = accounts[0]
        hit = f"USER{args.accounts}@example.net"  # stored for accounts[0], other case
        miss = f"nobody-{uuid.uuid4().hex[:6]}@example.net"
        assert await storage.suppressions.suppressed(target.id, [hit]) == {hit}
        results: dict[str, Any] = {}
        for name, call in (
            ("ping (SELECT 1)", lambda: storage.ping()),
            ("matching, miss", lambda: storage.suppressions.matching(target.id, [miss])),
            ("matching, hit", lambda: storage.suppressions.matching(target.id, [hit])),
        ):
            for _ in range(200):  # warm the pool's prepared statements
                await call()
            samples = []
            for _ in range(args.lookups):
                started = time.perf_counter()
                await call()
                samples.append(time.perf_counter() - started)
            results[name] = _percentiles(samples)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL URL (default: a throwaway embedded server)")
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        server = None
        if url is None:
            import pgserver

            server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
            url = server.get_uri()
        migrations.apply(url)
        try:
            results = host.run(run, url, args)
        finally:
            if server is not None:
                server.cleanup()
    print(json.dumps({"entries": args.entries, "accounts": args.accounts, **results}, indent=2))


if __name__ == "__main__":
    main()
