"""``relay accounts ip-credentials add|list|remove``, run as a real subprocess."""

from __future__ import annotations

import ipaddress
import json
import uuid
from pathlib import Path

from relay.storage import Storage

from .storage.helpers import make_account
from .test_cli import _env, relay_async


async def test_add_list_remove_by_email_and_by_id(
    database_url: str, tmp_path: Path, storage: Storage
) -> None:
    env = _env(database_url, tmp_path)
    account = await make_account(storage, email="app@example.com")

    added = await relay_async(
        env, "accounts", "ip-credentials", "add", "APP@example.com", "192.0.2.9/24",
        "--description", "web servers",
    )
    assert added.returncode == 0, added.stderr
    printed = json.loads(added.stdout)
    assert printed["network"] == "192.0.2.0/24" and printed["description"] == "web servers"
    assert printed["account_id"] == str(account.id)

    second = await relay_async(env, "accounts", "ip-credentials", "add", str(account.id), "2001:db8::/48")
    assert second.returncode == 0, second.stderr

    listed = await relay_async(env, "accounts", "ip-credentials", "list", str(account.id))
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert [line["network"] for line in lines] == ["192.0.2.0/24", "2001:db8::/48"]

    removed = await relay_async(
        env, "accounts", "ip-credentials", "remove", "app@example.com", printed["id"]
    )
    assert removed.returncode == 0, removed.stderr
    assert [str(c.network) for c in await storage.ip_credentials.list()] == ["2001:db8::/48"]

    again = await relay_async(
        env, "accounts", "ip-credentials", "remove", "app@example.com", printed["id"]
    )
    assert again.returncode == 1
    assert b"has no IP credential" in again.stderr and b"Traceback" not in again.stderr


async def test_refusals_are_one_line(database_url: str, tmp_path: Path, storage: Storage) -> None:
    env = _env(database_url, tmp_path)
    mine = await make_account(storage, email="mine@example.com")
    theirs = await make_account(storage, email="theirs@example.com")
    held = await storage.ip_credentials.create(
        account_id=theirs.id, network=ipaddress.ip_network("10.9.0.0/16"), limit=100
    )

    cases = [
        (("0.0.0.0/0",), b"open relay"),
        (("10.0.0.0/7",), b"/8 or longer"),
        (("nonsense",), b"is not an IP network"),
        (("10.9.8.0/24",), f"10.9.0.0/16 (id {held.id}) of account {theirs.id}".encode()),
    ]
    for args, says in cases:
        result = await relay_async(env, "accounts", "ip-credentials", "add", "mine@example.com", *args)
        assert result.returncode == 1, (args, result.stderr)
        [line] = result.stderr.decode().splitlines()
        assert line.startswith("relay: network: ") and says.decode() in line, line

    missing = await relay_async(env, "accounts", "ip-credentials", "list", str(uuid.uuid4()))
    assert missing.returncode == 1 and b"no account with id or email" in missing.stderr
    assert await storage.ip_credentials.list(account_id=mine.id) == []
