"""IP credentials against a real PostgreSQL: the overlap rule lives in the database."""

from __future__ import annotations

import ipaddress
import uuid

import psycopg2
import pytest
import trio

from relay.storage import InvalidReference, NetworkOverlap, Storage, TooManyCredentials

from .helpers import make_account

net = ipaddress.ip_network
LIMIT = 100


async def test_create_list_get_delete_scoped_by_account(storage: Storage) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    first = await storage.ip_credentials.create(
        account_id=a.id, network=net("192.0.2.0/24"), description="app servers", limit=LIMIT
    )
    second = await storage.ip_credentials.create(
        account_id=a.id, network=net("2001:db8::/48"), limit=LIMIT
    )
    assert first.network == net("192.0.2.0/24") and first.description == "app servers"
    assert second.network == net("2001:db8::/48") and second.description == ""
    assert [c.id for c in await storage.ip_credentials.list(account_id=a.id)] == [first.id, second.id]
    assert await storage.ip_credentials.list(account_id=b.id) == []
    assert [c.id for c in await storage.ip_credentials.list()] == [first.id, second.id]
    assert await storage.ip_credentials.get(first.id, account_id=a.id) == first
    assert await storage.ip_credentials.get(first.id, account_id=b.id) is None
    assert await storage.ip_credentials.delete(first.id, account_id=b.id) is False
    assert await storage.ip_credentials.delete(first.id, account_id=a.id) is True
    assert await storage.ip_credentials.delete(first.id, account_id=a.id) is False
    assert [c.id for c in await storage.ip_credentials.list(account_id=a.id)] == [second.id]


async def test_match_finds_the_enabled_account_whose_network_holds_the_address(
    storage: Storage,
) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    cred = await storage.ip_credentials.create(account_id=a.id, network=net("10.1.0.0/16"), limit=LIMIT)
    await storage.ip_credentials.create(account_id=b.id, network=net("2001:db8:1::/48"), limit=LIMIT)

    found = await storage.ip_credentials.match(ipaddress.ip_address("10.1.255.7"))
    assert found is not None
    credential, account = found
    assert credential == cred and account.id == a.id
    v6 = await storage.ip_credentials.match(ipaddress.ip_address("2001:db8:1::25"))
    assert v6 is not None and v6[1].id == b.id
    assert await storage.ip_credentials.match(ipaddress.ip_address("10.2.0.1")) is None
    assert await storage.ip_credentials.match(ipaddress.ip_address("2001:db8:2::1")) is None

    await storage.accounts.update(a.id, disabled=True)
    assert await storage.ip_credentials.match(ipaddress.ip_address("10.1.0.1")) is None


@pytest.mark.parametrize(("mine", "theirs"), [
    ("10.0.0.0/16", "10.0.0.0/16"),       # equal
    ("10.0.0.0/16", "10.0.3.0/24"),       # inside
    ("10.0.3.0/24", "10.0.0.0/8"),        # around
    ("2001:db8::/48", "2001:db8::1/128"),
])
async def test_overlap_with_another_account_is_refused(
    storage: Storage, mine: str, theirs: str
) -> None:
    a = await make_account(storage)
    b = await make_account(storage)
    held = await storage.ip_credentials.create(account_id=a.id, network=net(mine), limit=LIMIT)
    with pytest.raises(NetworkOverlap) as caught:
        await storage.ip_credentials.create(account_id=b.id, network=net(theirs), limit=LIMIT)
    assert caught.value.existing == held
    assert await storage.ip_credentials.list(account_id=b.id) == []


async def test_duplicate_or_overlap_within_one_account_is_refused(storage: Storage) -> None:
    a = await make_account(storage)
    held = await storage.ip_credentials.create(account_id=a.id, network=net("192.0.2.0/24"), limit=LIMIT)
    for again in ("192.0.2.0/24", "192.0.2.128/25"):
        with pytest.raises(NetworkOverlap) as caught:
            await storage.ip_credentials.create(account_id=a.id, network=net(again), limit=LIMIT)
        assert caught.value.existing == held
    # Adjacent is not overlapping.
    await storage.ip_credentials.create(account_id=a.id, network=net("192.0.3.0/24"), limit=LIMIT)


async def test_concurrent_overlapping_creates_one_wins(storage: Storage) -> None:
    """Ten accounts race for overlapping networks; the exclusion constraint lets
    exactly one commit, whatever interleaving the pool produces."""
    accounts = [await make_account(storage) for _ in range(10)]
    outcomes: list[str] = []

    async def claim(i: int) -> None:
        try:
            await storage.ip_credentials.create(
                account_id=accounts[i].id, network=net(f"198.51.100.{i * 8}/29" if i else "198.51.100.0/24"),
                limit=LIMIT,
            )
            outcomes.append("created")
        except NetworkOverlap:
            outcomes.append("overlap")

    async with trio.open_nursery() as nursery:
        for i in range(len(accounts)):
            nursery.start_soon(claim, i)
    # 198.51.100.0/24 overlaps every /29 inside it; the /29s do not overlap each other,
    # so either the /24 alone or every /29 but the first wins.
    stored = await storage.ip_credentials.list()
    assert outcomes.count("created") == len(stored)
    if any(c.network == net("198.51.100.0/24") for c in stored):
        assert len(stored) == 1
    else:
        assert len(stored) == 9
    for x in stored:
        for y in stored:
            assert x is y or not x.network.overlaps(y.network)


async def test_the_database_refuses_what_the_checks_would(storage: Storage, database_url: str) -> None:
    """Behind relay.networks: a direct INSERT of the whole Internet, or an overlap,
    fails in PostgreSQL itself."""
    a = await make_account(storage)
    await storage.ip_credentials.create(account_id=a.id, network=net("203.0.113.0/24"), limit=LIMIT)
    conn = psycopg2.connect(database_url)
    try:
        for network in ("0.0.0.0/0", "::/0", "12.0.0.0/7", "2001::/31", "203.0.113.64/26"):
            with pytest.raises(psycopg2.IntegrityError), conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO ip_credentials (id, account_id, network) VALUES (%s, %s, %s)",
                    (str(uuid.uuid4()), str(a.id), network),
                )
    finally:
        conn.close()


async def test_limit_per_account_and_missing_account(storage: Storage) -> None:
    a = await make_account(storage)
    await storage.ip_credentials.create(account_id=a.id, network=net("192.0.2.1/32"), limit=2)
    await storage.ip_credentials.create(account_id=a.id, network=net("192.0.2.2/32"), limit=2)
    with pytest.raises(TooManyCredentials):
        await storage.ip_credentials.create(account_id=a.id, network=net("192.0.2.3/32"), limit=2)
    with pytest.raises(InvalidReference):
        await storage.ip_credentials.create(
            account_id=uuid.uuid4(), network=net("192.0.2.9/32"), limit=LIMIT
        )


async def test_deleting_the_account_deletes_its_credentials(storage: Storage) -> None:
    a = await make_account(storage)
    await storage.ip_credentials.create(account_id=a.id, network=net("192.0.2.0/24"), limit=LIMIT)
    assert await storage.accounts.delete(a.id)
    assert await storage.ip_credentials.list() == []
    b = await make_account(storage)
    await storage.ip_credentials.create(account_id=b.id, network=net("192.0.2.0/24"), limit=LIMIT)
