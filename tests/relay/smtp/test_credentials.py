"""The authenticator against a real PostgreSQL and real bcrypt."""

from __future__ import annotations

import trio

from relay.smtp.credentials import Authenticator
from relay.storage import Storage

from .conftest import PASSWORD, create_account


async def test_concurrent_logins_share_one_bcrypt_and_later_ones_hit_the_cache(storage: Storage) -> None:
    account = await create_account(storage)
    auth = Authenticator(storage, ttl=60, rounds=4)
    await auth.prepare()
    results = []

    async def login() -> None:
        results.append(await auth.verify(account.email, PASSWORD))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(login)
    assert [r.id for r in results] == [account.id] * 10
    assert auth.statistics().bcrypt_checks == 1
    hits = auth.statistics().cache_hits
    assert (await auth.verify(account.email.upper(), PASSWORD)).id == account.id
    assert auth.statistics().cache_hits == hits + 1
    assert auth.statistics().bcrypt_checks == 1


async def test_cache_never_accepts_a_wrong_password_or_an_old_one(storage: Storage) -> None:
    account = await create_account(storage)
    auth = Authenticator(storage, ttl=60, rounds=4)
    assert await auth.verify(account.email, PASSWORD) is not None
    assert await auth.verify(account.email, "wrong") is None
    from relay import hashed_secrets

    await storage.accounts.update(account.id, password_hash=hashed_secrets.hash_password("new password", rounds=4))
    assert await auth.verify(account.email, PASSWORD) is None
    assert await auth.verify(account.email, "new password") is not None


async def test_every_failure_costs_one_bcrypt(storage: Storage) -> None:
    account = await create_account(storage)
    await storage.accounts.update(account.id, password_hash="$2b$04$damaged")
    auth = Authenticator(storage, ttl=60, rounds=4)
    await auth.prepare()
    for user, password in [("nobody@example.com", PASSWORD), (account.email, PASSWORD), (account.email, "x" * 200)]:
        before = auth.statistics().bcrypt_checks
        assert await auth.verify(user, password) is None
        assert auth.statistics().bcrypt_checks == before + 1
