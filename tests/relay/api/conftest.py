"""The API against a real PostgreSQL, through the quart test client or a real socket.

``api`` is parametrized: each test using it runs once through quart's in-process test
client and once through hypercorn on 127.0.0.1:0 with httpx, and every reply either
way is checked against the OpenAPI document the server publishes (``openapi_check``).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import httpx
import pytest
import trio

from relay import hashed_secrets, models
from relay.api.app import create_app
from relay.api.server import ApiListener, serve_api
from relay.composition import Runtime
from relay.config import ApiConfig, Config
from relay.storage import Storage

from .openapi_check import check_reply

PASSWORD_HASH = hashed_secrets.hash_password("correct horse", rounds=4)
_MISSING = object()


@attrs.frozen
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return jsonlib.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


class Api:
    """One way to send requests to the app; ``mode`` is ``quart`` or ``socket``."""

    def __init__(self, mode: str, runtime: Runtime, send: Any) -> None:
        self.mode = mode
        self.runtime = runtime
        self._send = send
        self.replies: list[Reply] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: Any = _MISSING,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> Reply:
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        if json is not _MISSING:
            content = jsonlib.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        reply = await self._send(method, path, all_headers, content, dict(params or {}))
        if check:
            check_reply(method, path, reply)
        self.replies.append(reply)
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Reply:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)


def api_config(**api: Any) -> Config:
    settings = {"listen": "127.0.0.1:0", "rate_limit_per_minute": 10_000, **api}
    return Config(api=ApiConfig(**settings))


@pytest.fixture
def config() -> Config:
    return api_config()


@pytest.fixture
def runtime(storage: Storage, database_url: str, config: Config) -> Runtime:
    return Runtime(config=config, database_url=database_url, storage=storage)


@pytest.fixture(params=["quart", "socket"])
async def api(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Api]:
    if request.param == "quart":
        app = create_app(runtime)
        client = app.test_client()

        async def send_quart(method: str, path: str, headers: dict[str, str], body: bytes | None,
                             params: dict[str, str]) -> Reply:
            response = await client.open(
                path, method=method, headers=headers, data=body or b"", query_string=params or None,
            )
            return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                         await response.get_data())

        yield Api("quart", runtime, send_quart)
        return

    async with trio.open_nursery() as nursery:
        bound: ApiListener = await nursery.start(serve_api, runtime)
        async with httpx.AsyncClient(base_url=bound.url, timeout=30) as http:

            async def send_socket(method: str, path: str, headers: dict[str, str],
                                  body: bytes | None, params: dict[str, str]) -> Reply:
                response = await http.request(method, path, headers=headers, content=body,
                                              params=params or None)
                return Reply(response.status_code,
                             {k.lower(): v for k, v in response.headers.items()}, response.content)

            yield Api("socket", runtime, send_socket)
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- keys and rows


@attrs.frozen
class Tenant:
    account: models.Account
    key: str = attrs.field(repr=False)

    @property
    def id(self) -> str:
        return str(self.account.id)


async def make_tenant(storage: Storage, email: str | None = None, **fields: Any) -> Tenant:
    import uuid

    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    account = await storage.accounts.create(
        name="Tenant", email=email or f"{uuid.uuid4().hex[:8]}@example.com",
        password_hash=PASSWORD_HASH, api_key_hash=key.hash, api_key_prefix=key.prefix,
        allowed_domains=("example.com",),
    )
    if fields:
        account = await storage.accounts.update(account.id, **fields)  # type: ignore[assignment]
    return Tenant(account, key.secret)


@pytest.fixture
async def operator_key(storage: Storage) -> str:
    key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
    await storage.admin_keys.create(name="test", key_hash=key.hash, key_prefix=key.prefix)
    return key.secret


@pytest.fixture
async def tenant(storage: Storage) -> Tenant:
    return await make_tenant(storage)


@pytest.fixture
async def other(storage: Storage) -> Tenant:
    return await make_tenant(storage)
