"""Reference SMTP server for bench/compare.py: aiosmtpd + asyncpg, a row per message.

The simplest way to do what the relay does on its accept path with the usual asyncio
stack: aiosmtpd's ``SMTP`` protocol on a plain asyncio server, and ``handle_DATA``
INSERTs the message into a table through its own asyncpg pool and answers 250 only
after the INSERT has returned (asyncpg runs it in autocommit mode, so it has
committed). One INSERT and one commit per message: no batching, no AUTH, no TLS.

Bench use only (aiosmtpd is a test/bench dependency, not a relay one). Listens on
127.0.0.1 unless told otherwise; prints ``ready <port>`` on stdout once it listens.

    python bench/aiosmtpd_pg.py --database-url postgresql://... --port 2526
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.storage import host  # the relay's rule for choosing the asyncio loop

TABLE = "bench_aiosmtpd_messages"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id          bigserial PRIMARY KEY,
    mail_from   text NOT NULL,
    rcpt_to     text[] NOT NULL,
    raw         bytea NOT NULL,
    size        integer NOT NULL,
    client_ip   text,
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""

INSERT = f"INSERT INTO {TABLE} (mail_from, rcpt_to, raw, size, client_ip) VALUES ($1, $2, $3, $4, $5)"


class StoreHandler:
    """aiosmtpd handler: every accepted message becomes a committed row before the 250."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        try:
            await self.pool.execute(
                INSERT, envelope.mail_from or "", list(envelope.rcpt_tos), raw, len(raw), peer
            )
        except Exception as exc:
            print(f"store failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return "451 4.3.0 Could not store the message"
        return "250 2.0.0 OK: stored"


async def serve(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.database_url, min_size=1, max_size=args.pool_size)
    await pool.execute(SCHEMA)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            StoreHandler(pool),
            hostname="aiosmtpd.bench",  # else aiosmtpd calls socket.getfqdn() per connection
            data_size_limit=args.max_message_size,
            timeout=args.timeout,
            loop=loop,
        )

    server = await loop.create_server(factory, args.host, args.port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    server.close()
    await pool.close()


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2526, help="0 = any free port")
    parser.add_argument("--pool-size", type=int, default=10,
                        help="asyncpg pool size (default 10, as bench/compare.py gives the relay)")
    parser.add_argument("--max-message-size", type=int, default=25 * 1024 * 1024)
    parser.add_argument("--timeout", type=float, default=30.0, help="idle timeout per session")
    args = parser.parse_args(argv)
    # The loop the relay's own processes host on (uvloop's when installed and
    # RELAY_UVLOOP is not 0), so the two asyncio-based servers always compare alike.
    with asyncio.Runner(loop_factory=host.new_host_loop) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
