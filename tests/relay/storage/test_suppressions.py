"""Suppression lists on a real PostgreSQL: upsert, expiry, paging, the RCPT lookup,
bounces written with the verdict, and the ``recipient.suppressed`` outbox rows."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg2

from relay import models
from relay.models import MessageStatus, SuppressionSource
from relay.storage import Bounce, Finish, InvalidReference, Storage

from .helpers import make_account, new_message


def _sql(url: str, statement: str, *args: object) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def subscribe(url: str, account_id: uuid.UUID, events: tuple[str, ...] = ("recipient.suppressed",)) -> None:
    """An enabled webhook endpoint (its API is not on this branch: plain SQL)."""
    _sql(
        url,
        """INSERT INTO webhook_endpoints (id, account_id, url, events, enabled, secret, description)
           VALUES (%s, %s, 'https://hooks.example/x', %s, true, 'k', '')""",
        str(uuid.uuid4()), str(account_id), list(events),
    )


def suppressed_events(url: str, account_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = _sql(
        url,
        """SELECT body FROM webhook_events WHERE account_id = %s AND kind = 'recipient.suppressed'
           ORDER BY created_at""",
        str(account_id),
    )
    return [json.loads(r[0]) for r in rows]


def _future(days: float = 1) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


async def test_add_get_delete_and_case_insensitive_upsert(storage: Storage) -> None:
    a = await make_account(storage)
    added = await storage.suppressions.add(account_id=a.id, address="Bob@Example.net", reason="asked")
    assert added.new
    entry = added.entry
    assert (entry.address, entry.reason, entry.source) == ("Bob@Example.net", "asked", SuppressionSource.MANUAL)
    assert entry.expires_at is None and entry.message_id is None

    expiry = _future()
    again = await storage.suppressions.add(
        account_id=a.id, address="bob@example.NET", reason="again", expires_at=expiry
    )
    assert not again.new
    assert again.entry.id == entry.id and again.entry.address == "Bob@Example.net"
    assert again.entry.reason == "again" and again.entry.expires_at == expiry
    assert again.entry.created_at == entry.created_at

    assert await storage.suppressions.get(entry.id, account_id=a.id) == again.entry
    assert await storage.suppressions.delete(entry.id, account_id=a.id)
    assert await storage.suppressions.get(entry.id, account_id=a.id) is None
    assert not await storage.suppressions.delete(entry.id, account_id=a.id)


async def test_accounts_do_not_see_each_others_entries(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    entry = (await storage.suppressions.add(account_id=a.id, address="x@example.net", reason="")).entry
    assert await storage.suppressions.get(entry.id, account_id=b.id) is None
    assert not await storage.suppressions.delete(entry.id, account_id=b.id)
    assert await storage.suppressions.list(account_id=b.id) == []
    assert await storage.suppressions.suppressed(b.id, ["x@example.net"]) == set()
    assert await storage.suppressions.suppressed(a.id, ["X@EXAMPLE.net", "y@example.net"]) == {"X@EXAMPLE.net"}


async def test_unknown_account_is_an_invalid_reference(storage: Storage) -> None:
    try:
        await storage.suppressions.add(account_id=uuid.uuid4(), address="x@example.net", reason="")
    except InvalidReference:
        pass
    else:
        raise AssertionError("expected InvalidReference")


async def test_expired_entries_are_absent_everywhere_and_purged(
    storage: Storage, database_url: str
) -> None:
    a = await make_account(storage)
    subscribe(database_url, a.id)
    entry = (await storage.suppressions.add(
        account_id=a.id, address="gone@example.net", reason="r", expires_at=_future()
    )).entry
    live = (await storage.suppressions.add(account_id=a.id, address="kept@example.net", reason="r")).entry
    _sql(database_url, "UPDATE suppressions SET expires_at = now() - interval '1 second' WHERE id = %s",
         str(entry.id))

    assert await storage.suppressions.get(entry.id, account_id=a.id) is None
    assert [e.id for e in await storage.suppressions.list(account_id=a.id)] == [live.id]
    assert await storage.suppressions.suppressed(a.id, ["gone@example.net"]) == set()
    assert not await storage.suppressions.delete(entry.id, account_id=a.id)

    # Adding it again is a new suppression (its event is sent again), not a refresh.
    back = await storage.suppressions.add(account_id=a.id, address="GONE@example.net", reason="back")
    assert back.new and back.entry.id == entry.id and back.entry.address == "GONE@example.net"
    assert back.entry.expires_at is None and back.entry.created_at > entry.created_at
    assert [e["data"]["address"] for e in suppressed_events(database_url, a.id)] == [
        "gone@example.net", "kept@example.net", "GONE@example.net",
    ]

    _sql(database_url, "UPDATE suppressions SET expires_at = now() - interval '1 second' WHERE id = %s",
         str(entry.id))
    assert await storage.suppressions.purge_expired() == 1
    assert await storage.suppressions.purge_expired() == 0
    assert _sql(database_url, "SELECT count(*) FROM suppressions")[0][0] == 1


async def test_event_only_when_newly_suppressed(storage: Storage, database_url: str) -> None:
    a = await make_account(storage)
    quiet = await make_account(storage)  # no endpoint: no outbox row at all
    subscribe(database_url, a.id)
    expiry = _future(2)
    await storage.suppressions.add(account_id=a.id, address="n@example.net", reason="first",
                                   expires_at=expiry)
    await storage.suppressions.add(account_id=a.id, address="N@example.net", reason="refresh")
    await storage.suppressions.add(account_id=quiet.id, address="n@example.net", reason="first")
    events = suppressed_events(database_url, a.id)
    assert len(events) == 1
    body = events[0]
    assert body["type"] == "recipient.suppressed" and body["account_id"] == str(a.id)
    assert body["data"]["address"] == "n@example.net" and body["data"]["reason"] == "first"
    assert body["data"]["source"] == "manual" and body["data"]["expires_at"] is not None
    assert suppressed_events(database_url, quiet.id) == []


async def test_list_pages_newest_first_and_filters(storage: Storage, database_url: str) -> None:
    a = await make_account(storage)
    ids = []
    for i in range(5):
        ids.append((await storage.suppressions.add(
            account_id=a.id, address=f"user{i}@example.net", reason=""
        )).entry.id)
    # Distinct, ordered creation times whatever the clock's resolution.
    for i, ident in enumerate(ids):
        _sql(database_url, "UPDATE suppressions SET created_at = now() - make_interval(mins => %s) WHERE id = %s",
             10 - i, str(ident))
    _sql(database_url, "UPDATE suppressions SET source = 'bounce' WHERE id = %s", str(ids[1]))

    first = await storage.suppressions.list(account_id=a.id, limit=2)
    assert [e.id for e in first] == [ids[4], ids[3]]
    second = await storage.suppressions.list(
        account_id=a.id, limit=2, before=(first[-1].created_at, first[-1].id)
    )
    assert [e.id for e in second] == [ids[2], ids[1]]
    third = await storage.suppressions.list(
        account_id=a.id, limit=2, before=(second[-1].created_at, second[-1].id)
    )
    assert [e.id for e in third] == [ids[0]]

    assert [e.id for e in await storage.suppressions.list(account_id=a.id, address="USER3")] == [ids[3]]
    assert [e.id for e in await storage.suppressions.list(
        account_id=a.id, source=SuppressionSource.BOUNCE)] == [ids[1]]
    # LIKE wildcards in the filter are taken literally.
    assert await storage.suppressions.list(account_id=a.id, address="user_") == []
    assert await storage.suppressions.list(account_id=a.id, address="%") == []


async def test_finish_adds_bounces_only_for_applied_verdicts(
    storage: Storage, database_url: str
) -> None:
    a = await make_account(storage)
    subscribe(database_url, a.id)
    first, second = await storage.messages.enqueue_many([new_message(a), new_message(a)])
    claimed = await storage.messages.claim(worker_id="w", limit=2, lock_seconds=60)
    attempts = {m.id: m.attempts for m in claimed}
    provider_id = uuid.uuid4()

    def bounce(message_id: uuid.UUID, address: str) -> Bounce:
        return Bounce(a.id, address, "550 5.1.1 no such user", message_id, provider_id, "smtp", "c-1")

    applied = await storage.messages.finish("w", [
        Finish(first, MessageStatus.FAILED, error="refused", attempt=attempts[first],
               suppress=(bounce(first, "a@example.net"), bounce(first, "A@EXAMPLE.NET"))),
        # A stale claim: its verdict does not apply, so neither does its bounce.
        Finish(second, MessageStatus.FAILED, error="refused", attempt=attempts[second] + 1,
               suppress=(bounce(second, "b@example.org"),)),
    ])
    assert applied == [True, False]
    entries = await storage.suppressions.list(account_id=a.id)
    assert [(e.address, e.source, e.message_id, e.response) for e in entries] == [
        ("a@example.net", SuppressionSource.BOUNCE, first, "550 5.1.1 no such user"),
    ]
    events = suppressed_events(database_url, a.id)
    assert len(events) == 1  # the second bounce of the same address only refreshed it
    data = events[0]["data"]
    assert data["source"] == "bounce" and data["message_id"] == str(first)
    assert data["provider"] == {"id": str(provider_id), "type": "smtp"}
    assert data["response"] == "550 5.1.1 no such user"
    assert events[0]["correlation_id"] == "c-1"


async def test_matching_returns_the_entry_keyed_as_given(storage: Storage) -> None:
    a = await make_account(storage)
    entry = (await storage.suppressions.add(account_id=a.id, address="Mixed@example.net", reason="")).entry
    found = await storage.suppressions.matching(a.id, ["mixed@EXAMPLE.net"])
    assert found == {"mixed@EXAMPLE.net": entry}
    assert isinstance(found["mixed@EXAMPLE.net"], models.Suppression)


async def test_housekeeping_purges_expired_entries(storage: Storage, database_url: str) -> None:
    from relay.worker import housekeeping

    a = await make_account(storage)
    entry = (await storage.suppressions.add(
        account_id=a.id, address="old@example.net", reason="", expires_at=_future()
    )).entry
    kept = (await storage.suppressions.add(account_id=a.id, address="kept@example.net", reason="")).entry
    _sql(database_url, "UPDATE suppressions SET expires_at = now() - interval '1 second' WHERE id = %s",
         str(entry.id))
    await housekeeping.run_once(storage, dt.timedelta(days=7))
    assert [r[0] for r in _sql(database_url, "SELECT id::text FROM suppressions")] == [str(kept.id)]
