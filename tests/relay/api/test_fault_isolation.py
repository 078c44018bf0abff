"""One request's fault stays in that request: a 500 problem naming the request id, the
traceback in the log under that id, and the server goes on serving — on the same
connection, through hypercorn as in production and through quart's test client.
"""

from __future__ import annotations

import psycopg2
import pytest
import structlog
from structlog.contextvars import merge_contextvars

from relay.storage import Storage

from .conftest import Api, Tenant

SECRET = "password=fault-secret-4711"


def assert_bare_500(reply_body: bytes, status: int, headers: dict[str, str]) -> str:
    assert status == 500
    assert headers["content-type"] == "application/problem+json"
    text = reply_body.decode()
    assert SECRET not in text and "Traceback" not in text and "File \"" not in text
    return headers["x-request-id"]


async def test_unexpected_exception_is_contained(
    api: Api, tenant: Tenant, storage: Storage, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"bug with a secret in its message: {SECRET}")

    # One repository call is faulty; every other request reaches the real database.
    monkeypatch.setattr(storage.providers, "list", broken)
    with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
        failed = await api.get("/api/v1/providers", key=tenant.key)
        served = await api.get(f"/api/v1/accounts/{tenant.id}", key=tenant.key)
        again = await api.get("/api/v1/providers", key=tenant.key)

    request_id = assert_bare_500(failed.body, failed.status, dict(failed.headers))
    assert failed.json == {
        "type": "urn:relay:problem:internal", "title": "Internal Server Error", "status": 500,
        "detail": "the request failed; quote the request id when reporting it",
        "request_id": request_id,
    }
    assert served.status == 200 and served.json["id"] == tenant.id
    assert again.status == 500 and again.headers["x-request-id"] != request_id
    # Logged once, with the traceback and under the request id the client was given.
    [entry] = [e for e in logs if e["event"] == "request failed" and e.get("request_id") == request_id]
    assert isinstance(entry["exc_info"], RuntimeError)
    lines = [e for e in logs if e["event"] == "request"]
    assert [e["status"] for e in lines] == [500, 200, 500]
    assert lines[0]["request_id"] == request_id


async def test_database_fault_is_contained(
    api: Api, tenant: Tenant, database_url: str,
) -> None:
    """A real fault, no stand-in: the providers table (esp_providers) is gone from this
    test's own database."""
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("ALTER TABLE esp_providers RENAME TO esp_providers_gone")
        with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
            failed = await api.get("/api/v1/providers", key=tenant.key)
            served = await api.get(f"/api/v1/accounts/{tenant.id}", key=tenant.key)
    finally:
        with admin.cursor() as cur:
            cur.execute("ALTER TABLE esp_providers_gone RENAME TO esp_providers")
        admin.close()
    request_id = assert_bare_500(failed.body, failed.status, dict(failed.headers))
    assert failed.json["request_id"] == request_id
    assert "esp_providers_gone" not in failed.body.decode() and "relation" not in failed.body.decode()
    assert served.status == 200
    assert any(e["event"] == "storage error" and e.get("request_id") == request_id for e in logs)
