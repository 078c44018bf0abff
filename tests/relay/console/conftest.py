"""The console through quart's test client, against a real PostgreSQL.

``Browser`` keeps the session cookie like a browser would and reads the CSRF token
from the last page it got, so tests post forms the way a person does.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from quart_trio import QuartTrio

from relay.api.app import create_app
from relay.composition import Runtime
from relay.config import ApiConfig, Config, ConsoleConfig, DkimConfig
from relay.storage import Storage

from ..api.conftest import Tenant, make_tenant, operator_key  # noqa: F401 - fixtures by name

_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
#: The DKIM key-encryption key of the console's tests (the DKIM pages need one).
KEK = base64.b64encode(os.urandom(32)).decode()


@attrs.frozen
class Page:
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


class Browser:
    def __init__(self, app: QuartTrio) -> None:
        self.app = app
        self.client = app.test_client()
        self.csrf = ""

    async def get(self, path: str, **query: str) -> Page:
        response = await self.client.get(path, query_string=query or None)
        return await self._page(response)

    async def post(self, path: str, form: Mapping[str, Any] | None = None, *, csrf: str | None = None) -> Page:
        data = {"csrf": self.csrf if csrf is None else csrf, **(form or {})}
        if csrf == "":
            del data["csrf"]
        response = await self.client.post(path, form=data)
        return await self._page(response)

    async def _page(self, response: Any) -> Page:
        text = await response.get_data(as_text=True)
        if found := _CSRF.search(text):
            self.csrf = found.group(1)
        return Page(response.status_code, {k.lower(): v for k, v in response.headers.items()}, text)

    async def sign_in(self, key: str) -> Page:
        await self.get("/console/sign-in")
        page = await self.post("/console/sign-in", {"key": key})
        if page.status == 303:
            await self.get("/console/")
        return page


@pytest.fixture
def config() -> Config:
    return Config(
        api=ApiConfig(listen="127.0.0.1:0", rate_limit_per_minute=10_000),
        console=ConsoleConfig(session_key="test-session-key"),
        dkim=DkimConfig(key_encryption_key=KEK),
    )


@pytest.fixture
def runtime(storage: Storage, database_url: str, config: Config) -> Runtime:
    return Runtime(config=config, database_url=database_url, storage=storage)


@pytest.fixture
def app(runtime: Runtime) -> QuartTrio:
    return create_app(runtime)


@pytest.fixture
def browser(app: QuartTrio) -> Browser:
    return Browser(app)


@pytest.fixture
async def tenant(storage: Storage) -> Tenant:
    return await make_tenant(storage)


@pytest.fixture
async def other(storage: Storage) -> Tenant:
    return await make_tenant(storage)
