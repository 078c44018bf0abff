"""Every error is a problem+json with the field named; never a 500 for bad input."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import structlog

from relay import hashed_secrets
from relay.storage import DatabaseUnavailable, Storage

from .conftest import Api, Tenant

ACCOUNT = {"name": "Acme", "email": "ops@acme.example", "password": "hunter2-hunter2"}


@pytest.mark.parametrize("header", [
    None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer rk_live_doesnotexist",
    "Bearer rk_admin_doesnotexist", "Bearer something-else", "Bearer " + "x" * 500,
])
async def test_bad_keys_are_401_with_a_challenge(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    reply = await api.get("/api/v1/providers", headers=headers)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json["type"] == "urn:relay:problem:unauthorized"


async def test_revoked_operator_key_stops(api: Api, storage: Storage) -> None:
    key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
    admin = await storage.admin_keys.create(name="t", key_hash=key.hash, key_prefix=key.prefix)
    assert (await api.get("/api/v1/accounts", key=key.secret)).status == 200
    await storage.admin_keys.revoke(admin.id)
    assert (await api.get("/api/v1/accounts", key=key.secret)).status == 401


@pytest.mark.parametrize(("content", "content_type", "status", "words"), [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"", "application/json", 400, "empty"),
    (b"[1, 2]", "application/json", 400, "expected a JSON object"),
    (b'"text"', "application/json", 400, "expected a JSON object"),
    (b'{"name": "a", "name": "b"}', "application/json", 400, "appears twice"),
    (b'{"messages_per_minute": NaN}', "application/json", 400, "NaN is not valid JSON"),
    (b'{"name": "\xff"}', "application/json", 400, "not UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400, "nested too deeply"),
    (b'{"name": "a"}', "text/plain", 415, "expected application/json"),
    (b'{"name": "a"}', "", 415, "expected application/json"),
    (b"name=a", "application/x-www-form-urlencoded", 415, "expected application/json"),
])
async def test_malformed_bodies(api: Api, operator_key: str, content: bytes, content_type: str,
                                status: int, words: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    reply = await api.post("/api/v1/accounts", key=operator_key, content=content, headers=headers)
    assert reply.status == status, reply.body
    assert words in reply.json["detail"]
    assert "Traceback" not in reply.body.decode()


async def test_unknown_path_method_and_bad_id(api: Api, operator_key: str) -> None:
    reply = await api.get("/api/v1/nothing-here", key=operator_key)
    assert reply.status == 404 and reply.json["type"] == "urn:relay:problem:not-found"
    reply = await api.get("/api/v1/accounts/not-a-uuid", key=operator_key)
    assert reply.status == 404
    reply = await api.request("PATCH", "/api/v1/accounts", key=operator_key, json={})
    assert reply.status == 405
    assert set(reply.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    reply = await api.request("OPTIONS", "/api/v1/accounts")
    assert reply.status == 405


async def test_unexpected_failure_is_a_bare_500(api: Api, tenant: Tenant, storage: Storage,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(storage.accounts, "get", broken)
    with structlog.testing.capture_logs() as logs:
        reply = await api.get(f"/api/v1/accounts/{tenant.id}", key=tenant.key)
    assert reply.status == 500
    assert "internal detail" not in reply.body.decode()
    assert "Traceback" not in reply.body.decode()
    assert reply.json["request_id"] == reply.headers["x-request-id"]
    assert any(entry.get("exc_info") for entry in logs)  # the traceback goes to the log


async def test_database_down_is_503_with_retry_after(api: Api, tenant: Tenant, storage: Storage,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailable("database unavailable: OSError")

    monkeypatch.setattr(storage.providers, "list", down)
    reply = await api.get("/api/v1/providers", key=tenant.key)
    assert reply.status == 503
    assert int(reply.headers["retry-after"]) > 0


async def test_request_id_is_returned_and_echoed(api: Api, tenant: Tenant) -> None:
    reply = await api.get("/healthz")
    generated = reply.headers["x-request-id"]
    assert len(generated) == 32
    reply = await api.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert reply.headers["x-request-id"] == "trace-123"
    reply = await api.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert reply.headers["x-request-id"] != "bad id\twith spaces"
    reply = await api.get("/api/v1/nothing", key=tenant.key, headers={"X-Request-Id": "trace-456"})
    assert reply.json["request_id"] == "trace-456"


async def test_no_key_or_password_in_logs_or_responses(api: Api, operator_key: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        created = await api.post("/api/v1/accounts", key=operator_key, json=ACCOUNT)
        assert created.status == 201
        account_key = created.json["api_key"]
        account_id = created.json["id"]
        provider = await api.post("/api/v1/providers", key=account_key, json={
            "name": "p", "type": "smtp", "config": {"host": "h.example", "password": "upstream-pw-42"}})
        assert provider.status == 201
        rotated = await api.post(f"/api/v1/accounts/{account_id}/rotate-key", key=account_key)
        await api.patch(f"/api/v1/accounts/{account_id}", key=rotated.json["api_key"],
                        json={"password": "another-pass-77"})
        await api.get(f"/api/v1/accounts/{account_id}", key=account_key)  # the old key: 401
        await api.get("/api/v1/providers", key="rk_live_" + "guess" * 8)
    log_text = json.dumps(logs, default=str) + caplog.text
    assert "request" in log_text and account_id in json.dumps(logs)
    secrets = [operator_key, account_key, rotated.json["api_key"], ACCOUNT["password"],
               "upstream-pw-42", "another-pass-77", "guess" * 8]
    for secret in secrets:
        assert secret not in log_text
    for reply in api.replies:
        text = reply.body.decode(errors="replace")
        for secret in (ACCOUNT["password"], "upstream-pw-42", "another-pass-77", operator_key):
            assert secret not in text
    # Every request logged one line with its id and status.
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == len(api.replies)
    assert all(entry.get("status") and entry.get("method") for entry in lines)


async def test_other_objects_404_detail_is_generic(api: Api, tenant: Tenant) -> None:
    reply = await api.get(f"/api/v1/providers/{uuid.uuid4()}", key=tenant.key)
    assert reply.json["detail"] == "no provider with this id"
