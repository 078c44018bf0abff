"""Request bodies and query strings: decode, check, and describe for OpenAPI.

Strategy: each resource declares its body as an ``Object`` of typed fields. The same
declaration does two jobs: ``Object.parse`` turns untrusted JSON into plain Python
values or raises ``Invalid`` naming the member at fault (``config.port``,
``allowed_domains[2]``), and ``Object.schema`` emits the JSON Schema that the OpenAPI
document publishes, so the document cannot drift from what the server enforces.

Rules applied everywhere: unknown members are refused (a typo must not be silently
ignored), ``true`` is not a number and ``1`` is not a boolean, strings have a
maximum length, and a JSON body must be one object of at most ``api.max_body_size``
bytes with unique member names.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

import attrs

from ..conditions import json_kind
from ..jsonvalue import JSON
from ..syntax import MAX_DOMAIN, MAX_EMAIL, check_domain, check_email

__all__ = [
    "Boolean",
    "Custom",
    "Domain",
    "Email",
    "Enum",
    "Field",
    "Integer",
    "Invalid",
    "ListOf",
    "Nullable",
    "Object",
    "Password",
    "String",
    "Uuid",
    "decode_json",
    "parse_query",
]

#: bcrypt looks at 72 bytes at most; more would be silently ignored, so it is refused.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD = 8


class Invalid(Exception):
    """A request member is not acceptable. ``str()`` is ``"<field>: <problem>"``."""

    def __init__(self, field: str, problem: str, status: int = 422) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem
        self.status = status


class ValueType(Protocol):
    """What a ``Field`` holds: checks one member's JSON value and describes it in JSON Schema."""

    def parse(self, value: JSON, path: str, /) -> object: ...

    def schema(self) -> dict[str, Any]: ...


# ---------------------------------------------------------------- scalar types


@attrs.frozen
class String:
    max_length: int
    min_length: int = 1
    description: str = ""

    def parse(self, value: JSON, path: str) -> str:
        if not isinstance(value, str):
            raise Invalid(path, f"expected a string, got {json_kind(value)}")
        if len(value) > self.max_length:
            raise Invalid(path, f"too long: {len(value)} characters, at most {self.max_length}")
        if len(value) < self.min_length:
            raise Invalid(
                path, "must not be empty" if self.min_length == 1
                else f"too short: at least {self.min_length} characters"
            )
        if "\x00" in value:
            raise Invalid(path, "must not contain NUL characters")
        return value

    def schema(self) -> dict[str, Any]:
        return _described(
            {"type": "string", "minLength": self.min_length, "maxLength": self.max_length},
            self.description,
        )


@attrs.frozen
class Password:
    """Write-only; bcrypt-hashed by the caller."""

    description: str = ""

    def parse(self, value: JSON, path: str) -> str:
        if not isinstance(value, str):
            raise Invalid(path, f"expected a string, got {json_kind(value)}")
        if len(value) < MIN_PASSWORD:
            raise Invalid(path, f"too short: at least {MIN_PASSWORD} characters")
        if len(value.encode("utf-8")) > MAX_PASSWORD_BYTES:
            raise Invalid(path, f"too long: at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
        return value

    def schema(self) -> dict[str, Any]:
        return _described({
            "type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD_BYTES,
            "writeOnly": True,
        }, self.description or f"Write-only; {MIN_PASSWORD} characters to {MAX_PASSWORD_BYTES} bytes in UTF-8.")


@attrs.frozen
class Domain:
    """A host name (A-labels for IDN); ``*.example.com`` too when ``wildcard``."""

    wildcard: bool = False
    description: str = ""

    def parse(self, value: JSON, path: str) -> str:
        if not isinstance(value, str):
            raise Invalid(path, f"expected a domain name, got {json_kind(value)}")
        base = value[2:] if self.wildcard and value.startswith("*.") else value
        if check_domain(base) is None:
            hint = " or *.example.com" if self.wildcard else ""
            raise Invalid(
                path, f"{value[:80]!r} is not a domain name such as example.com{hint}"
                " (internationalized names in their xn-- form)",
            )
        return value.lower()

    def schema(self) -> dict[str, Any]:
        return _described(
            {"type": "string", "maxLength": MAX_DOMAIN + (2 if self.wildcard else 0)},
            self.description,
        )


@attrs.frozen
class Email:
    """``local@domain`` with a dot-atom local part (RFC 5322 §3.4.1) and a host name."""

    description: str = ""

    def parse(self, value: JSON, path: str) -> str:
        if not isinstance(value, str):
            raise Invalid(path, f"expected an email address, got {json_kind(value)}")
        if not check_email(value):
            raise Invalid(path, f"{value[:80]!r} is not an email address such as alice@example.com")
        return value

    def schema(self) -> dict[str, Any]:
        return _described(
            {"type": "string", "format": "email", "maxLength": MAX_EMAIL}, self.description
        )


@attrs.frozen
class Integer:
    minimum: int
    maximum: int
    description: str = ""

    def parse(self, value: JSON, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(path, f"expected a whole number, got {json_kind(value)}")
        if not self.minimum <= value <= self.maximum:
            raise Invalid(path, f"must be between {self.minimum} and {self.maximum}, got {value}")
        return value

    def schema(self) -> dict[str, Any]:
        return _described(
            {"type": "integer", "minimum": self.minimum, "maximum": self.maximum},
            self.description,
        )


@attrs.frozen
class Boolean:
    description: str = ""

    def parse(self, value: JSON, path: str) -> bool:
        if not isinstance(value, bool):
            raise Invalid(path, f"expected true or false, got {json_kind(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return _described({"type": "boolean"}, self.description)


@attrs.frozen
class Uuid:
    description: str = ""

    def parse(self, value: JSON, path: str) -> uuid.UUID:
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError:
                pass
        raise Invalid(path, f"expected an id such as {uuid.UUID(int=0)}, got {_describe(value)}")

    def schema(self) -> dict[str, Any]:
        return _described({"type": "string", "format": "uuid"}, self.description)


@attrs.frozen
class Enum:
    choices: tuple[str, ...]
    description: str = ""

    def parse(self, value: JSON, path: str) -> str:
        if value not in self.choices or not isinstance(value, str):
            raise Invalid(path, f"must be one of {', '.join(self.choices)}; got {_describe(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        return _described({"type": "string", "enum": list(self.choices)}, self.description)


@attrs.frozen
class Custom:
    """A value checked by a function (e.g. routing conditions), with a hand-written schema."""

    check: Callable[[JSON, str], object]
    json_schema: Mapping[str, Any]

    def parse(self, value: JSON, path: str) -> object:
        return self.check(value, path)

    def schema(self) -> dict[str, Any]:
        return dict(self.json_schema)


# ---------------------------------------------------------------- composites


@attrs.frozen
class Nullable:
    inner: ValueType

    def parse(self, value: JSON, path: str) -> object:
        return None if value is None else self.inner.parse(value, path)

    def schema(self) -> dict[str, Any]:
        inner = self.inner.schema()
        kind = inner.get("type")
        if isinstance(kind, str):
            return {**inner, "type": [kind, "null"]}
        return {"anyOf": [inner, {"type": "null"}]}


@attrs.frozen
class ListOf:
    item: ValueType
    max_items: int
    unique: bool = True
    description: str = ""

    def parse(self, value: JSON, path: str) -> list[object]:
        if not isinstance(value, list):
            raise Invalid(path, f"expected a list, got {json_kind(value)}")
        if len(value) > self.max_items:
            raise Invalid(path, f"too many items: {len(value)}, at most {self.max_items}")
        items = [self.item.parse(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if self.unique:
            seen: set[object] = set()
            for i, item in enumerate(items):
                if item in seen:
                    raise Invalid(f"{path}[{i}]", f"{str(item)!r} is listed twice")
                seen.add(item)
        return items

    def schema(self) -> dict[str, Any]:
        schema = {"type": "array", "items": self.item.schema(), "maxItems": self.max_items}
        if self.unique:
            schema["uniqueItems"] = True
        return _described(schema, self.description)


_MISSING = object()


@attrs.frozen
class Field:
    type: ValueType
    required: bool = False
    #: What ``create``/``replace`` fill in when the member is absent (``_MISSING``: nothing).
    default: Any = _MISSING
    write_only: bool = False


@attrs.frozen
class Object:
    fields: Mapping[str, Field]
    description: str = ""

    def parse(self, data: JSON, path: str = "", *, partial: bool = False) -> dict[str, Any]:
        """Check ``data`` and return its members as Python values.

        Args:
            partial: PATCH semantics: nothing is required and no default is filled in.

        Raises:
            Invalid: names the first member at fault.
        """
        if not isinstance(data, dict):
            raise Invalid(path or "body", f"expected a JSON object, got {json_kind(data)}")
        prefix = f"{path}." if path else ""
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise Invalid(
                prefix + unknown[0],
                f"unknown field; expected one of {', '.join(self.fields)}",
            )
        result: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name in data:
                result[name] = spec.type.parse(data[name], prefix + name)
            elif partial:
                continue
            elif spec.required:
                raise Invalid(prefix + name, "is required")
            elif spec.default is not _MISSING:
                result[name] = spec.default() if callable(spec.default) else spec.default
        return result

    def schema(self, *, partial: bool = False) -> dict[str, Any]:
        properties = {}
        for name, spec in self.fields.items():
            prop = spec.type.schema()
            if spec.write_only:
                prop["writeOnly"] = True
            properties[name] = prop
        schema: dict[str, Any] = {
            "type": "object", "properties": properties, "additionalProperties": False,
        }
        required = [n for n, s in self.fields.items() if s.required]
        if required and not partial:
            schema["required"] = required
        if partial:
            schema["minProperties"] = 1
        return _described(schema, self.description)


def _described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    if description:
        schema["description"] = description
    return schema


def _describe(value: JSON) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- bodies and queries


def _refuse_duplicates(pairs: list[tuple[str, JSON]]) -> dict[str, JSON]:
    result: dict[str, JSON] = {}
    for key, value in pairs:
        if key in result:
            raise Invalid(key, "appears twice in the same object", status=400)
        result[key] = value
    return result


def _refuse_constant(name: str) -> NoReturn:
    raise Invalid("body", f"{name} is not valid JSON", status=400)


def decode_json(body: bytes, content_type: str | None) -> dict[str, JSON]:
    """The JSON value of a request body.

    Raises:
        Invalid: status 415 for another media type, 400 for a body that is not JSON
            (not UTF-8, a syntax error, duplicate member names, NaN) or not an object.
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise Invalid(
            "Content-Type",
            f"expected application/json, got {media or 'none'}; send a JSON object",
            status=415,
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("body", "not UTF-8; JSON bodies are UTF-8", status=400) from None
    if not text.strip():
        raise Invalid("body", "empty; send a JSON object", status=400)
    try:
        data = json.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except json.JSONDecodeError as exc:
        raise Invalid(
            "body", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            status=400,
        ) from None
    except RecursionError:
        raise Invalid("body", "nested too deeply", status=400) from None
    if not isinstance(data, dict):
        raise Invalid("body", f"expected a JSON object, got {json_kind(data)}", status=400)
    return data


def parse_timestamp(text: str, path: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(path, f"{text[:40]!r} is not an ISO 8601 time such as 2024-05-01T12:00:00Z", status=400) from None
    if value.tzinfo is None:
        raise Invalid(path, "give a time zone, e.g. 2024-05-01T12:00:00Z", status=400)
    return value


def parse_query(args: Any, allowed: tuple[str, ...]) -> dict[str, str]:
    """Query parameters as a dict; unknown or repeated parameters are refused (400)."""
    result: dict[str, str] = {}
    for name in args:
        values = args.getlist(name)
        if name not in allowed:
            hint = f"expected {', '.join(allowed)}" if allowed else "this path takes none"
            raise Invalid(name, f"unknown query parameter; {hint}", status=400)
        if len(values) != 1:
            raise Invalid(name, "give this query parameter once", status=400)
        result[name] = values[0]
    return result


def page_size(text: str | None, *, default: int, maximum: int) -> int:
    """The ``limit`` query parameter of a listing. Raises: Invalid (400)."""
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise Invalid("limit", f"expected a whole number from 1 to {maximum}", status=400)
    return int(text)


def query_uuid(text: str, name: str) -> uuid.UUID:
    """Raises: Invalid (400) naming the query parameter."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Invalid(name, f"expected an id such as {uuid.UUID(int=0)}", status=400) from None
