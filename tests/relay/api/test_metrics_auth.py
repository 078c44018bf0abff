"""``GET /metrics``: open by default; ``api.metrics_auth`` requires an operator key."""

from __future__ import annotations

from relay.composition import Runtime
from relay.config import Config
from relay.storage import Storage

from .conftest import Api, Tenant, api_config


async def test_metrics_are_open_by_default(api: Api) -> None:
    reply = await api.get("/metrics", check=False)  # text, not JSON: the schema check reads JSON
    assert reply.status == 200 and reply.content_type == "text/plain"
    assert b"# TYPE api_requests_total counter" in reply.body


async def test_metrics_auth_requires_an_operator_key(
    storage: Storage, database_url: str, operator_key: str, tenant: Tenant
) -> None:
    from relay.api.app import create_app

    app = create_app(Runtime(config=_locked(), database_url=database_url, storage=storage))
    client = app.test_client()
    assert (await client.get("/metrics")).status_code == 401
    tenant_reply = await client.get("/metrics", headers={"Authorization": f"Bearer {tenant.key}"})
    assert tenant_reply.status_code == 403
    operator = await client.get("/metrics", headers={"Authorization": f"Bearer {operator_key}"})
    assert operator.status_code == 200 and b"api_requests_total" in await operator.get_data()


def _locked() -> Config:
    return api_config(metrics_auth=True)
