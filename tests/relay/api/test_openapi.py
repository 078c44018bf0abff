"""The OpenAPI document: valid 3.1, served, and exactly the routes the app has.

Responses are checked against it by every test (``openapi_check``); these tests check
the document itself and that the check would catch a drift.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from typing import Annotated

import attrs
import jsonschema
import pytest
from openapi_spec_validator import validate
from quart_trio import QuartTrio

import relay.api
from relay.api import openapi, operations, shapes
from relay.api.app import create_app, register_api
from relay.composition import Runtime
from relay.config import Config

from . import openapi_check
from .conftest import Api


def test_document_is_valid_openapi_3_1() -> None:
    document = openapi_check.document()
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_served_document_is_the_one_checked(api: Api) -> None:
    reply = await api.get("/api/v1/openapi.json")
    assert reply.status == 200
    served = reply.json
    assert served["paths"] == openapi_check.document()["paths"]
    assert served["components"] == openapi_check.document()["components"]
    validate(served)


async def test_paths_match_the_app_routes(runtime: Runtime) -> None:
    app = create_app(runtime)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue  # the web console's HTML pages are not part of the JSON API
        # Compared by shape: parameter names differ (<uuid:account_id> is {id}).
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", "{}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    documented = {
        (method, re.sub(r"\{[^}]+\}", "{}", path))
        for path, operations in openapi_check.document()["paths"].items()
        for method in operations
    }
    assert routes == documented


def test_request_bodies_come_from_the_validators() -> None:
    schemas = openapi_check.document()["components"]["schemas"]
    account = schemas["AccountCreate"]
    assert account["additionalProperties"] is False
    assert set(account["required"]) == {"name", "email", "password"}
    assert account["properties"]["password"]["writeOnly"] is True
    assert schemas["AccountPatch"].get("required") is None


def test_strict_response_schema_catches_a_leak() -> None:
    leaky = {
        "id": "00000000-0000-0000-0000-000000000000", "name": "n", "email": "e@example.com",
        "allowed_domains": [], "disabled": False, "messages_per_minute": None,
        "recipients_per_hour": None, "default_provider_id": None, "api_key_prefix": "rk_live_x",
        "created_at": "2024-01-01T00:00:00+00:00", "updated_at": "2024-01-01T00:00:00+00:00",
    }
    openapi_check.validate(leaky, "/components/schemas/Account")
    with pytest.raises(jsonschema.ValidationError):
        openapi_check.validate({**leaky, "password_hash": "$2b$..."}, "/components/schemas/Account")


def test_provider_secrets_are_markers_in_responses() -> None:
    provider = {
        "id": "00000000-0000-0000-0000-000000000000", "account_id": "00000000-0000-0000-0000-000000000000",
        "name": "p", "type": "sendgrid", "enabled": True,
        "created_at": "2024-01-01T00:00:00+00:00", "updated_at": "2024-01-01T00:00:00+00:00",
    }
    openapi_check.validate({**provider, "config": {"api_key": {"set": True}}}, "/components/schemas/Provider")
    with pytest.raises(jsonschema.ValidationError):
        openapi_check.validate({**provider, "config": {"api_key": "SG.plain"}}, "/components/schemas/Provider")


def _api_routes() -> QuartTrio:
    return register_api(QuartTrio("relay.api"))


def test_an_undocumented_route_fails_the_document() -> None:
    app = _api_routes()

    @app.get("/api/v1/undocumented")
    async def undocumented() -> str:
        return ""

    with pytest.raises(LookupError, match="/api/v1/undocumented"):
        openapi.document(Config(), app)


def test_every_documented_view_is_served() -> None:
    """An ``@operation`` on a function no route serves is documentation of nothing."""
    served = set(_api_routes().view_functions.values())
    documented = set()
    for info in pkgutil.iter_modules(relay.api.__path__):
        module = importlib.import_module(f"relay.api.{info.name}")
        documented |= {f for f in vars(module).values() if inspect.isfunction(f) and operations.of(f)}
    assert documented
    assert documented <= served, sorted(f.__qualname__ for f in documented - served)


def test_a_shape_refuses_a_member_it_does_not_declare() -> None:
    @attrs.frozen
    class Shape:
        id: int
        note: Annotated[str, shapes.OPTIONAL]

    assert shapes.dump(Shape, id=1) == {"id": 1}
    with pytest.raises(TypeError, match="secret"):
        shapes.dump(Shape, id=1, secret="x")
    with pytest.raises(TypeError, match="Shape.id"):
        shapes.dump(Shape, note="x")


@pytest.mark.parametrize("metrics_auth", [False, True])
async def test_a_route_answers_without_a_key_exactly_when_the_document_says_it_is_public(
    runtime: Runtime, metrics_auth: bool
) -> None:
    """Every route, asked without a key: refused with 401 unless its declaration (and so
    the document's ``security: []``) makes it public under this configuration."""
    # Room for one keyless request per route in the address's failure budget (else 429).
    api = attrs.evolve(runtime.config.api, metrics_auth=metrics_auth, auth_failures_per_minute=1000)
    config = attrs.evolve(runtime.config, api=api)
    app = create_app(attrs.evolve(runtime, config=config))
    document = openapi.document(config, _api_routes())
    by_id = {op["operationId"]: op for ops in document["paths"].values() for op in ops.values()}
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        path = re.sub(r"<(?:\w+:)?\w+>", "00000000-0000-0000-0000-000000000000", rule.rule)
        declared = operations.of(app.view_functions[rule.endpoint])
        assert declared is not None, rule.rule
        public = by_id[declared.id].get("security") == []
        response = await client.open(path, method=method)
        assert (response.status_code != 401) == public, (method, rule.rule, response.status_code)
        checked += 1
    assert checked > 30
    assert (
        "security" not in document["paths"]["/metrics"]["get"]
        if metrics_auth else document["paths"]["/metrics"]["get"]["security"] == []
    )
