"""Limits across processes: ``SharedCounts`` over ``storage.limit_counts``.

Two ``SharedCounts`` on one database stand for two processes (each syncs only when
the test says so); the last test runs two real ``relay smtp`` processes.
"""

from __future__ import annotations

import json
import signal
import smtplib
import ssl
import uuid
from pathlib import Path

import psycopg2
import trio

from relay.smtp.limits import (
    AccountLimits,
    AuthFailureTracker,
    ConcurrencyPerIp,
    ConnectionRateLimiter,
    TrustedNetworks,
)
from relay.smtp.shared_limits import SharedCounts
from relay.storage import Storage
from relay.storage.limit_counts import Level

from ..test_cli import PASSWORD, TIMEOUT, _env, _query, relay_async, start_relay


def _sql(url: str, statement: str) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


WINDOWS = {"messages": 60.0, "recipients": 3600.0, "connections": 60.0, "auth_failures": 300.0}


def two_processes() -> tuple[SharedCounts, SharedCounts]:
    a, b = SharedCounts(WINDOWS), SharedCounts(WINDOWS)
    a.start_sharing()
    b.start_sharing()
    return a, b


async def test_each_process_reads_the_others_sums_never_its_own(storage: Storage) -> None:
    counts = storage.limit_counts
    await counts.sync("p1", events={("messages", "acct"): 2}, levels=[Level("open", "10.0.0.1", 3, 30)],
                      windows=WINDOWS, refresh={})
    await counts.sync("p2", events={("messages", "acct"): 1}, levels=[], windows=WINDOWS, refresh={})
    seen_by_p1 = await counts.sync("p1", events={}, levels=[], windows=WINDOWS, refresh={})
    seen_by_p3 = await counts.sync("p3", events={}, levels=[], windows=WINDOWS, refresh={})
    assert seen_by_p1.events == {("messages", "acct"): 1}
    assert seen_by_p3.events == {("messages", "acct"): 3}
    assert seen_by_p3.levels == {("open", "10.0.0.1"): 3}
    # A level set to 0 is withdrawn.
    await counts.sync("p1", events={}, levels=[Level("open", "10.0.0.1", 0, 30)], windows=WINDOWS, refresh={})
    assert (await counts.sync("p3", events={}, levels=[], windows=WINDOWS, refresh={})).levels == {}


async def test_expired_levels_and_old_events_stop_counting(storage: Storage, database_url: str) -> None:
    counts = storage.limit_counts
    await counts.sync("dead", events={("connections", "10.0.0.9"): 5},
                      levels=[Level("open", "10.0.0.9", 2, 30)], windows=WINDOWS, refresh={})
    _sql(database_url, "UPDATE limit_events SET bucket = bucket - interval '2 hours'")
    _sql(database_url, "UPDATE limit_levels SET expires_at = now() - interval '1 second'")
    seen = await counts.sync("alive", events={}, levels=[], windows=WINDOWS, refresh={}, prune=True)
    assert seen.events == {} and seen.levels == {}
    assert _query(database_url, "SELECT count(*) FROM limit_events") == [(0,)]


async def test_an_account_limit_holds_across_two_processes(storage: Storage) -> None:
    a, b = two_processes()
    in_a, in_b = AccountLimits(a), AccountLimits(b)
    account = uuid.uuid4()
    for _ in range(2):
        assert in_a.may_send_message(account, per_minute=3)
        in_a.record_message(account, recipients=4)
    await a.sync(storage)
    await b.sync(storage)
    assert in_b.may_send_message(account, per_minute=3)
    in_b.record_message(account, recipients=1)
    assert not in_b.may_send_message(account, per_minute=3)
    assert not in_b.may_add_recipient(account, per_hour=10, pending=1)  # 8 + 1 + 1 = 10
    await b.sync(storage)
    await a.sync(storage)
    assert not in_a.may_send_message(account, per_minute=3)


async def test_address_limits_hold_across_two_processes(storage: Storage) -> None:
    a, b = two_processes()
    nobody = TrustedNetworks([])
    ip = "192.0.2.7"
    # Concurrent connections: 2 open in a, so b may open only 1 more of 3.
    open_a, open_b = ConcurrencyPerIp(3, nobody, a), ConcurrencyPerIp(3, nobody, b)
    open_a.add(ip)
    open_a.add(ip)
    rate_a, rate_b = ConnectionRateLimiter(2, nobody, a), ConnectionRateLimiter(2, nobody, b)
    assert rate_a.allow(ip)
    auth_a, auth_b = AuthFailureTracker(2, 300, 900, a), AuthFailureTracker(2, 300, 900, b)
    assert not auth_a.record_failure(ip)
    assert not auth_a.record_failure(ip)
    await a.sync(storage)
    await b.sync(storage)
    assert open_b.allow(ip)
    open_b.add(ip)
    assert not open_b.allow(ip)
    assert rate_b.allow(ip) and not rate_b.allow(ip)
    assert auth_b.record_failure(ip), "the third failure anywhere blocks the address"
    await b.sync(storage)
    await a.sync(storage)
    assert auth_a.is_blocked(ip)
    # Connections closed in a are withdrawn at a's next sync.
    open_a.remove(ip)
    open_a.remove(ip)
    await a.sync(storage)
    await b.sync(storage)
    assert open_b.allow(ip)


async def test_counts_wait_for_the_database_and_the_last_known_stay(storage: Storage, database_url: str) -> None:
    a, b = two_processes()
    in_a, in_b = AccountLimits(a), AccountLimits(b)
    account = uuid.uuid4()
    in_a.record_message(account, 1)
    await a.sync(storage)
    await b.sync(storage)
    assert not in_b.may_send_message(account, per_minute=1)
    _sql(database_url, "ALTER TABLE limit_events RENAME TO limit_events_away")
    try:
        in_b.record_message(account, 1)
        await b.sync(storage)  # fails: logged, kept
        assert not in_b.may_send_message(account, per_minute=2), "last known counts still apply"
    finally:
        _sql(database_url, "ALTER TABLE limit_events_away RENAME TO limit_events")
    await b.sync(storage)
    await a.sync(storage)
    assert not in_a.may_send_message(account, per_minute=2), "b's message was published late, not lost"


SENDER = "app@app.example"
RAW = b"From: app@app.example\r\nTo: friend@example.net\r\nSubject: hi\r\n\r\nHello\r\n"


def send(port: int, count: int) -> list[int]:
    """One session; the reply code to each MAIL FROM (a 250 is followed by the message)."""
    codes = []
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # relay's own self-signed pair
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=context)
        client.login(SENDER, PASSWORD)
        for _ in range(count):
            code, _text = client.mail(SENDER)
            codes.append(code)
            if code == 250:
                client.rcpt("friend@example.net")
                assert client.data(RAW)[0] == 250
    return codes


async def wait_synced_after(database_url: str, pid: int, condition: str) -> None:
    """Wait until ``condition`` (SQL) holds, then until process ``pid`` synced after that."""
    while not _query(database_url, f"SELECT {condition}")[0][0]:
        await trio.sleep(0.05)
    [(moment,)] = _query(database_url, "SELECT now()")
    while not _query(
        database_url,
        "SELECT count(*) FROM limit_processes WHERE process LIKE %s AND synced_at > %s",
        f"%:{pid}:%", moment,
    )[0][0]:
        await trio.sleep(0.05)


async def test_two_relay_smtp_processes_enforce_one_account_limit(database_url: str, tmp_path: Path) -> None:
    env = _env(database_url, tmp_path, RELAY_SMTP__SHARED_LIMITS_INTERVAL="0.2")
    result = await relay_async(
        env, "accounts", "create", "--name", "App", "--email", SENDER,
        "--allowed-domain", "app.example", "--password-stdin", stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    _sql(database_url, "UPDATE accounts SET messages_per_minute = 3")
    async with trio.open_nursery() as nursery:
        a, a_log = await start_relay(nursery, "smtp", env)
        b, b_log = await start_relay(nursery, "smtp", env)
        try:
            with trio.fail_after(TIMEOUT):
                ports = []
                for log in (a_log, b_log):
                    line = await log.until(lambda line: '"smtp listening"' in line, "smtp listening")
                    ports.append(json.loads(line)["ports"][0])
                    nursery.start_soon(log.rest)
                port_a, port_b = ports
                assert await trio.to_thread.run_sync(send, port_a, 2) == [250, 250]
                await wait_synced_after(
                    database_url, b.pid,
                    "coalesce(sum(n), 0) = 2 FROM limit_events WHERE kind = 'messages'",
                )
                # b has counted a's two: one more, then the limit (3 per minute).
                assert await trio.to_thread.run_sync(send, port_b, 2) == [250, 450]
                await wait_synced_after(
                    database_url, a.pid,
                    "coalesce(sum(n), 0) = 3 FROM limit_events WHERE kind = 'messages'",
                )
                assert await trio.to_thread.run_sync(send, port_a, 1) == [450]
        finally:
            a.send_signal(signal.SIGTERM)
            b.send_signal(signal.SIGTERM)
        with trio.fail_after(TIMEOUT):
            assert await a.wait() == 0 and await b.wait() == 0
    assert _query(database_url, "SELECT count(*) FROM messages") == [(3,)]
