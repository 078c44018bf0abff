"""Check a reply against the OpenAPI document: path, method, status, media type, body.

Used on every reply the ``api`` fixture sees, so the whole suite doubles as the
schema test. A reply whose status the operation does not declare fails; so does a
body with a member the schema does not list (response schemas are strict).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
from quart_trio import QuartTrio

from relay.api import openapi
from relay.api.app import register_api
from relay.config import Config

BASE = "urn:relay:openapi"


@functools.cache
def document() -> dict[str, Any]:
    return openapi.document(Config(), register_api(QuartTrio("relay.api")))


@functools.cache
def _registry() -> referencing.Registry:
    resource = referencing.Resource.from_contents(
        document(), default_specification=referencing.jsonschema.DRAFT202012
    )
    return referencing.Registry().with_resource(BASE, resource)


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    result = []
    for template in document()["paths"]:
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        result.append((re.compile(pattern), template))
    return result


def find_path(path: str) -> str | None:
    for pattern, template in _templates():
        if pattern.match(path):
            return template
    return None


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(ref_or_obj: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_obj.get("$ref")
    if ref is None:
        return ref_or_obj
    node: Any = document()
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node  # type: ignore[no-any-return]


def validate(value: Any, schema_pointer: str) -> None:
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{BASE}#{schema_pointer}"}, registry=_registry(),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    validator.validate(value)


def check_reply(method: str, path: str, reply: Any) -> None:
    path = path.split("?")[0]
    template = find_path(path)
    if reply.status >= 400 or template is None:
        assert reply.content_type == "application/problem+json", (
            method, path, reply.status, reply.content_type, reply.body[:300])
        body = reply.json
        assert body["status"] == reply.status
        validate(body, "/components/schemas/Problem")
    if template is None:
        assert reply.status == 404, (method, path, reply.status)
        return
    operations = document()["paths"][template]
    operation = operations.get(method.lower())
    if operation is None:
        assert reply.status in (405, 204, 403), (method, path, reply.status)  # 204/403: CORS preflight
        return
    responses = operation["responses"]
    assert str(reply.status) in responses, (
        f"{method} {template} answered {reply.status}, which the document does not declare"
    )
    response = _resolve(responses[str(reply.status)])
    content = response.get("content")
    if content is None:
        assert reply.body == b"", (method, path, reply.status, reply.body[:200])
        return
    assert reply.content_type in content, (method, path, reply.status, reply.content_type)
    if reply.status < 400:
        ref = responses[str(reply.status)]
        if "$ref" in ref:
            pointer = ref["$ref"].lstrip("#") + _pointer("content", reply.content_type, "schema")
        else:
            pointer = _pointer(
                "paths", template, method.lower(), "responses", str(reply.status),
                "content", reply.content_type, "schema",
            )
        validate(reply.json, pointer)
    for header in response.get("headers", {}):
        assert header.lower() in reply.headers, (method, path, reply.status, header)
