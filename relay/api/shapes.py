"""Response shapes: one frozen attrs class per JSON object the API answers with.

Strategy: a view builds its JSON with ``dump`` from a shape's fields, and the OpenAPI
document gets the shape's schema from ``schema`` over the same fields and their type
hints, so a member is in both or in neither: a view cannot answer a member the
document does not list (``dump`` refuses it) nor leave out one it promises. The
classes are never instantiated; they are declarations, like ``validation.Object`` for
request bodies and the classes of ``relay/provider_configs.py`` for provider configs.

Schemas are strict: every member not marked ``OPTIONAL`` is required and nothing else is
allowed (``unevaluatedProperties: false``, which also holds across a ``oneOf`` added
by ``Extended``). The test suite validates every response against them, so a response
that grows a member — a hash, a secret — fails a test instead of leaking quietly.

Types understood: ``str``, ``int``, ``bool``, ``uuid.UUID``, ``dt.datetime``,
``dict[str, Any]`` (any object), a ``StrEnum`` (its values), ``Literal`` (one value is a
``const``), ``X | None``, ``tuple[X, ...]``, and another shape — a ``$ref`` when it is
a published component, inline otherwise. What the type does not say rides in
``Annotated``: ``Doc`` (the description), ``Schema`` (added to or overriding what the
type gives: a narrower enum, a hand-written schema) and ``OPTIONAL``. Annotations
rather than ``attrs.field`` metadata, because a wrapper around ``attrs.field`` looks
like a default to mypy's attrs plugin and to ruff, and these classes have no defaults.

This is our own generator rather than quart-schema: quart-schema reaches attrs
classes only through msgspec, whose schemas drop field descriptions, ``date-time``
formats and strictness, and its request validation would replace ours (an HTML 400
instead of a problem+json 422 naming the member).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import inspect
import typing
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import attrs

__all__ = ["OPTIONAL", "Doc", "Extended", "Schema", "dump", "ref", "schema"]

_ID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    uuid.UUID: _ID,
    dt.datetime: _TIME,
}


@attrs.frozen
class Doc:
    """``Annotated[T, Doc("...")]``: the member's description in the document."""

    text: str


@attrs.frozen
class Schema:
    """``Annotated[T, Schema({...})]``: JSON Schema added to (or overriding) what ``T`` gives."""

    json: Mapping[str, Any]


@attrs.frozen
class _Optional:
    """The type of ``OPTIONAL``."""


#: ``Annotated[T, OPTIONAL]``: a member that may be left out of the JSON (not required).
OPTIONAL = _Optional()


@attrs.frozen
class _Member:
    """A shape's member as the generator sees it: its hint unwrapped from ``Annotated``."""

    name: str
    type: Any
    extras: tuple[Any, ...]

    @property
    def optional(self) -> bool:
        return OPTIONAL in self.extras


@functools.cache
def _members(shape: type) -> tuple[_Member, ...]:
    """The members of ``shape`` in order (cached: a shape is a declaration, never changed)."""
    hints = typing.get_type_hints(shape, include_extras=True)
    members = []
    for f in attrs.fields(shape):
        hint = hints[f.name]
        if typing.get_origin(hint) is Annotated:
            hint, *extras = typing.get_args(hint)
            members.append(_Member(f.name, hint, tuple(extras)))
        else:
            members.append(_Member(f.name, hint, ()))
    return tuple(members)


@functools.cache
def _plan(shape: type) -> tuple[frozenset[str], tuple[tuple[str, bool], ...]]:
    """What ``dump`` needs of ``shape``: its member names, and each (name, optional)
    in order — worked out once per shape, since ``dump`` runs for every object of
    every response."""
    members = _members(shape)
    return frozenset(m.name for m in members), tuple((m.name, m.optional) for m in members)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@attrs.frozen
class Extended:
    """A shape published with more schema at its top level (e.g. a ``oneOf`` that pairs
    two of its members)."""

    shape: type
    also: Mapping[str, Any]


# ---------------------------------------------------------------- JSON values


#: ``dump``'s marker for "the source has no such attribute" (``None`` is a value).
_ABSENT = object()


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def dump(shape: type, source: object = None, /, **given: Any) -> dict[str, Any]:
    """The JSON object of ``shape``: each member from ``given``, else the attribute of
    ``source`` with the same name (enums as their values, tuples as lists).

    A member with a default (``optional``) that is neither given nor on ``source`` is
    left out.

    Raises:
        TypeError: ``given`` names a member the shape does not have, or a required
            member has no value — the view and the document disagree.
    """
    names, members = _plan(shape)
    if given and not names.issuperset(given):
        unknown = sorted(set(given) - names)
        raise TypeError(f"{shape.__name__} has no member {unknown[0]!r}")
    result: dict[str, Any] = {}
    for name, optional in members:
        value = given[name] if name in given else getattr(source, name, _ABSENT)
        if value is _ABSENT:
            if optional:
                continue
            raise TypeError(f"{shape.__name__}.{name}: no value")
        result[name] = _plain(value)
    return result


# ---------------------------------------------------------------- JSON Schema


def _nullable(inner: dict[str, Any]) -> dict[str, Any]:
    if set(inner) == {"type"} and isinstance(inner["type"], str):
        return {"type": [inner["type"], "null"]}
    return {"anyOf": [inner, {"type": "null"}]}


def _type_schema(type_: Any, refs: Mapping[type, str]) -> dict[str, Any]:
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return _nullable(_type_schema(inner, refs))
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"type": "string", "enum": list(args)}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0], refs)}
    if origin is dict:
        return {"type": "object"}
    if inspect.isclass(type_) and issubclass(type_, enum.Enum):
        return {"type": "string", "enum": [m.value for m in type_]}
    if attrs.has(type_):
        return ref(refs[type_]) if type_ in refs else schema(type_, refs)
    return dict(_SCALARS[type_])


def schema(shape: type, refs: Mapping[type, str] | None = None) -> dict[str, Any]:
    """The strict JSON Schema of ``shape``; a nested shape named in ``refs`` is a ``$ref``.

    Raises:
        KeyError: a field's type is not one this module understands.
    """
    refs = refs or {}
    properties: dict[str, Any] = {}
    for m in _members(shape):
        prop = _type_schema(m.type, refs)
        for extra in m.extras:
            if isinstance(extra, Schema):
                prop.update(extra.json)
            elif isinstance(extra, Doc):
                prop["description"] = extra.text
        properties[m.name] = prop
    result: dict[str, Any] = {"type": "object", "properties": properties}
    required = [m.name for m in _members(shape) if not m.optional]
    if required:
        result["required"] = required
    result["unevaluatedProperties"] = False
    if shape.__doc__:
        result["description"] = inspect.cleandoc(shape.__doc__)
    return result
