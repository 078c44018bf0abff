"""``kill -9`` a real ``relay worker`` mid-batch: another worker delivers its messages.

The first worker is the real command (``python -m relay worker``, configured from
the environment, against the test database) with a short lease. The upstream is
aiosmtpd, holding every end of data unanswered, so the worker is mid-batch with all
its claims when it is killed; the sessions it leaves are never recorded. Then the
upstream answers again and a second worker (in this process) takes the lapsed
leases over: every message must arrive exactly once, each counted as a second
attempt, well within a minute — not after housekeeping's interval.

Timing is decided by polling the upstream and the database under generous
deadlines (a cold interpreter on a loaded two-core machine), never by sleeping a
fixed time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from relay.models import MessageStatus, ProviderType
from relay.storage import Storage

from ..storage.helpers import make_account
from .conftest import running, statuses, worker_config
from .test_leases import sql
from .test_worker import message
from .upstream import Upstream, aiosmtpd_upstream

#: The killed worker's lease (s): its messages are due again this long after the kill.
LEASE = 1.5
MESSAGES = 6
#: For a cold ``python -m relay`` on a slow machine.
START_TIMEOUT = 90
#: From the kill to every message delivered: the lease, a claim, six deliveries.
RECOVERY_TIMEOUT = 30


def worker_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k != "DATABASE_URL"}
    env.update(
        RELAY_DATABASE__URL=database_url,
        RELAY_DATABASE__MIGRATE_ON_START="false",
        RELAY_DATABASE__POOL_MIN_SIZE="1",
        RELAY_DATABASE__POOL_MAX_SIZE="4",
        RELAY_DATABASE__EMBEDDED_DIR=str(tmp_path / "pgdata"),
        RELAY_TLS__SELF_SIGNED_DIR=str(tmp_path / "tls"),
        RELAY_SMTP__HOSTNAME="relay.test",
        RELAY_LOGGING__FORMAT="json",
        RELAY_WORKER__LOCK_TIMEOUT=str(LEASE),
        RELAY_WORKER__POLL_INTERVAL="0.05",
        RELAY_WORKER__BATCH_SIZE="8",
        RELAY_WORKER__CONCURRENCY="8",
        RELAY_WORKER__PER_PROVIDER_CONCURRENCY="8",
        RELAY_WORKER__CONNECT_TIMEOUT="30",
        RELAY_WORKER__SEND_TIMEOUT="120",
        RELAY_WORKER__HOUSEKEEPING_INTERVAL="3600",
    )
    return env


async def poll(check: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    """Poll ``check`` (sync or async) until truthy; fail with ``what`` (and the worker's log)."""
    with trio.move_on_after(timeout):
        while True:
            value = check()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await trio.sleep(0.05)
    detail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail}")


def subjects(up: Upstream) -> list[str]:
    found = []
    for received in up.messages:
        headers = received.content.partition(b"\r\n\r\n")[0].decode()
        found += [line[len("Subject: "):] for line in headers.split("\r\n") if line.startswith("Subject: ")]
    return found


async def test_a_killed_worker_s_messages_are_delivered_once_by_another_within_its_lease(
    storage: Storage, database_url: str, tmp_path: Path
) -> None:
    account = await make_account(storage)
    async with aiosmtpd_upstream(None, tls="none", auth=False, hold=True) as up:
        provider = await storage.providers.create(
            account_id=account.id, name="slow", type=ProviderType.SMTP,
            config={"host": "127.0.0.1", "port": up.port, "tls": "none"},
        )
        await storage.accounts.update(account.id, default_provider_id=provider.id)
        ids = await storage.messages.enqueue_many([message(account, n) for n in range(MESSAGES)])

        log = tmp_path / "worker.log"
        with log.open("wb") as stderr:  # the child's log, shown when a wait times out
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "relay", "worker"], env=worker_env(database_url, tmp_path),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        try:
            # Mid-batch: every message claimed, its data sent, no answer yet.
            await poll(lambda: up.holding == MESSAGES or process.poll() is not None,
                       START_TIMEOUT, "the worker to hold every message at the upstream", log)
            assert process.returncode is None, log.read_text(errors="replace")
            rows = await sql(database_url, "SELECT status, locked_by, attempts, locked_until FROM messages")
            assert {(r[0], r[2]) for r in rows} == {("sending", 1)} and len(rows) == MESSAGES
            [killed_id] = {r[1] for r in rows}
            claimed_until = max(r[3] for r in rows)
            # The heartbeat renews across processes (one statement for all).
            await poll(lambda: _all_renewed_past(database_url, claimed_until), 5 * LEASE + 10,
                       "the worker to renew its leases", log)
            process.kill()  # SIGKILL: no release, no last write
            assert await process.wait() == -9
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        # The upstream noticed every session die; nothing of them was recorded.
        await poll(lambda: up.holding == 0, 10, "the upstream to drop the dead sessions")
        assert up.messages == []
        up.hold = False
        killed_at = trio.current_time()
        config = worker_config(poll_interval=0.05, concurrency=8, per_provider_concurrency=8, send_timeout=10)
        async with running(storage, config, worker_id="survivor") as survivor:
            await poll(lambda: _sent(storage, account, MESSAGES), RECOVERY_TIMEOUT,
                       "the second worker to deliver every message")
            recovery = trio.current_time() - killed_at
            # Counted when the batched write returns, just after the commit seen above.
            await poll(lambda: survivor.statistics().sent == MESSAGES, 10, "the survivor to count every delivery")

    assert sorted(subjects(up)) == sorted(f"n{n}" for n in range(MESSAGES))  # each exactly once
    assert recovery < RECOVERY_TIMEOUT  # measured ~LEASE + a poll; the bound is for slow machines
    for mid in ids:
        row = await storage.messages.get(mid)
        assert row is not None and (row.status, row.attempts, row.locked_by) == (MessageStatus.SENT, 2, None)
        takeover, delivered = await storage.delivery_logs.list_for_message(mid)
        assert takeover.response == f"lease of worker {killed_id} lapsed without a result; delivering again"
        assert delivered.response.startswith("250 ")


async def _all_renewed_past(database_url: str, moment: object) -> bool:
    [(renewed,)] = await sql(database_url, "SELECT bool_and(locked_until > %s) FROM messages", moment)
    return bool(renewed)


async def _sent(storage: Storage, account: object, n: int) -> bool:
    return (await statuses(storage, account))[MessageStatus.SENT] == n  # type: ignore[arg-type]
