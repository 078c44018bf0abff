import uuid

import psycopg2
import pytest

from relay import hashed_secrets
from relay.storage import Conflict, Storage

from .helpers import PASSWORD_HASH, make_account


async def test_create_and_get(storage: Storage) -> None:
    account = await make_account(storage, email="Alice@Example.COM", domains=("example.com", "*.example.org"))
    assert account.allowed_domains == ("example.com", "*.example.org")
    assert account.disabled is False
    assert await storage.accounts.get(account.id) == account
    assert await storage.accounts.get(uuid.uuid4()) is None


async def test_email_lookup_is_case_insensitive(storage: Storage) -> None:
    account = await make_account(storage, email="Alice@Example.COM")
    found = await storage.accounts.get_by_email("alice@example.com")
    assert found is not None and found.id == account.id
    assert await storage.accounts.get_by_email("bob@example.com") is None


async def test_duplicate_email_in_other_case_conflicts(storage: Storage) -> None:
    await make_account(storage, email="alice@example.com")
    with pytest.raises(Conflict):
        await make_account(storage, email="ALICE@example.com")


async def test_find_by_api_key_hash_and_rotate(storage: Storage) -> None:
    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    account = await storage.accounts.create(
        name="K", email="k@example.com", password_hash=PASSWORD_HASH,
        api_key_hash=key.hash, api_key_prefix=key.prefix,
    )
    assert (await storage.accounts.get_by_api_key_hash(hashed_secrets.hash_key(key.secret))).id == account.id
    new = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    assert await storage.accounts.set_api_key(account.id, api_key_hash=new.hash, api_key_prefix=new.prefix)
    assert await storage.accounts.get_by_api_key_hash(key.hash) is None
    rotated = await storage.accounts.get_by_api_key_hash(new.hash)
    assert rotated is not None and rotated.api_key_prefix == new.prefix


async def test_update_and_delete(storage: Storage) -> None:
    account = await make_account(storage)
    updated = await storage.accounts.update(account.id, disabled=True, allowed_domains=["a.example"])
    assert updated is not None
    assert updated.disabled is True and updated.allowed_domains == ("a.example",)
    assert updated.updated_at >= account.updated_at
    assert await storage.accounts.update(uuid.uuid4(), disabled=True) is None
    assert await storage.accounts.delete(account.id) is True
    assert await storage.accounts.delete(account.id) is False
    assert await storage.accounts.get(account.id) is None


async def test_update_refuses_unknown_columns(storage: Storage) -> None:
    account = await make_account(storage)
    with pytest.raises(ValueError, match="api_key_hash"):
        await storage.accounts.update(account.id, api_key_hash=b"x")


async def test_list_pages_by_id(storage: Storage) -> None:
    made = {(await make_account(storage)).id for _ in range(5)}
    first = await storage.accounts.list(limit=3)
    rest = await storage.accounts.list(limit=3, after=first[-1].id)
    assert len(first) == 3 and len(rest) == 2
    assert {a.id for a in first + rest} == made


async def test_password_hash_not_in_repr(storage: Storage) -> None:
    account = await make_account(storage)
    assert account.password_hash not in repr(account)


async def test_admin_keys(storage: Storage) -> None:
    assert await storage.admin_keys.count_active() == 0
    key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
    created = await storage.admin_keys.create(name="ops", key_hash=key.hash, key_prefix=key.prefix)
    assert created.last_used_at is None
    found = await storage.admin_keys.find_active(hashed_secrets.hash_key(key.secret))
    assert found is not None and found.id == created.id and found.last_used_at is not None
    assert await storage.admin_keys.count_active() == 1
    assert [k.id for k in await storage.admin_keys.list()] == [created.id]
    assert await storage.admin_keys.revoke(created.id)
    assert await storage.admin_keys.find_active(key.hash) is None
    assert await storage.admin_keys.count_active() == 0


async def test_an_operator_key_s_last_use_is_written_at_most_once_a_minute(
    storage: Storage, database_url: str
) -> None:
    key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
    await storage.admin_keys.create(name="ops", key_hash=key.hash, key_prefix=key.prefix)
    first = await storage.admin_keys.find_active(key.hash)
    assert first is not None and first.last_used_at is not None
    xmin = _sql_value(database_url, "SELECT xmin::text FROM admin_keys")
    again = await storage.admin_keys.find_active(key.hash)
    assert again is not None and again.last_used_at == first.last_used_at
    assert _sql_value(database_url, "SELECT xmin::text FROM admin_keys") == xmin, "no row written"
    _sql_value(database_url, "UPDATE admin_keys SET last_used_at = now() - interval '61 seconds' RETURNING 1")
    later = await storage.admin_keys.find_active(key.hash)
    assert later is not None and later.last_used_at > first.last_used_at


def _sql_value(url: str, statement: str) -> object:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchone()[0]
    finally:
        conn.close()
