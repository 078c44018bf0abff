"""Configured limits: per-key rate limit (429 + Retry-After), body size (413), CORS."""

from __future__ import annotations

import pytest

from relay.config import Config
from relay.limiting import TokenBuckets

from .conftest import Api, Tenant, api_config

LIMIT = 3
MAX_BODY = 2048


@pytest.fixture
def config() -> Config:
    return api_config(rate_limit_per_minute=LIMIT, max_body_size=MAX_BODY,
                      cors_origins=("https://admin.example",))


async def test_rate_limit_is_per_key(api: Api, tenant: Tenant, other: Tenant) -> None:
    path = f"/api/v1/accounts/{tenant.id}"
    for _ in range(LIMIT):
        assert (await api.get(path, key=tenant.key)).status == 200
    refused = await api.get(path, key=tenant.key)
    assert refused.status == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60 // LIMIT + 1
    assert "retry in" in refused.json["detail"]
    # Another key has its own budget; health checks need none.
    assert (await api.get(f"/api/v1/accounts/{other.id}", key=other.key)).status == 200
    assert (await api.get("/healthz")).status == 200


async def test_rotated_key_gets_a_fresh_budget(api: Api, tenant: Tenant) -> None:
    path = f"/api/v1/accounts/{tenant.id}"
    for _ in range(LIMIT - 1):
        await api.get(path, key=tenant.key)
    rotated = await api.post(path + "/rotate-key", key=tenant.key)
    assert rotated.status == 200
    assert (await api.get(path, key=tenant.key)).status == 401  # the old key is dead, not limited
    assert (await api.get(path, key=rotated.json["api_key"])).status == 200


@pytest.mark.parametrize("size", [MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, 10 * 1024 * 1024])
async def test_body_size_limit(api: Api, operator_key: str, size: int) -> None:
    prefix, suffix = b'{"name": "', b'"}'
    body = prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix
    assert len(body) == size
    reply = await api.post("/api/v1/accounts", key=operator_key, content=body,
                           headers={"Content-Type": "application/json"})
    if size <= MAX_BODY:
        assert reply.status == 422  # read and parsed: the name is too long
        assert reply.json["field"] == "name"
    else:
        assert reply.status == 413
        assert reply.json["type"] == "urn:relay:problem:body-too-large"


async def test_cors_preflight_and_headers(api: Api, tenant: Tenant) -> None:
    preflight = await api.request("OPTIONS", "/api/v1/providers", headers={
        "Origin": "https://admin.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == "https://admin.example"
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert "POST" in preflight.headers["access-control-allow-methods"]

    reply = await api.get("/api/v1/providers", key=tenant.key, headers={"Origin": "https://admin.example"})
    assert reply.headers["access-control-allow-origin"] == "https://admin.example"
    assert "X-Request-Id" in reply.headers["access-control-expose-headers"]

    stranger = await api.get("/api/v1/providers", key=tenant.key, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers
    refused = await api.request("OPTIONS", "/api/v1/providers", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert refused.status == 403


def test_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = TokenBuckets(60, lambda: now[0])
    assert all(limiter.take("k").allowed for _ in range(60))
    decision = limiter.take("k")
    assert not decision.allowed and decision.retry_after == 1
    now[0] += 1.0
    assert limiter.take("k").allowed
    assert not limiter.take("k").allowed
    assert limiter.take("other").allowed
    assert limiter.statistics().refused == 2


def test_limiter_forgets_idle_keys_and_is_bounded() -> None:
    now = [0.0]
    limiter = TokenBuckets(10, lambda: now[0], max_keys=100)
    for i in range(1000):
        limiter.take(i)
    assert limiter.statistics().keys == 100
    now[0] += 61.0
    limiter.take("fresh")
    assert limiter.statistics().keys == 1


def test_limiter_retry_after_rounds_up() -> None:
    now = [0.0]
    limiter = TokenBuckets(1, lambda: now[0])
    assert limiter.take("k").allowed
    assert limiter.take("k").retry_after == 60
    now[0] += 59.5
    assert limiter.take("k").retry_after == 1


def test_limiter_refund_gives_back_a_token_never_more() -> None:
    now = [0.0]
    limiter = TokenBuckets(2, lambda: now[0])
    assert limiter.take("k").allowed
    limiter.refund("k")
    assert limiter.take("k").allowed and limiter.take("k").allowed
    assert not limiter.take("k").allowed
    limiter.refund("k")
    limiter.refund("k")
    limiter.refund("k")  # capped at the capacity
    assert limiter.take("k").allowed and limiter.take("k").allowed
    assert not limiter.take("k").allowed
    limiter.refund("never-seen")  # a forgotten key is a full bucket: nothing to do
    assert limiter.statistics().keys == 1
