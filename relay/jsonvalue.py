"""``JSON``: the type of a decoded JSON value (RFC 8259), for code that checks one.

A parser of untrusted input (an API body, a form, a routing rule's conditions) takes a
``JSON`` and narrows it with ``isinstance`` before use. Its containers are read-only
(``Mapping``, ``Sequence``) so that a value built in code, a ``dict[str, list[str]]``
say, is one too. Documents the relay builds itself (OpenAPI, responses) stay
``dict[str, Any]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

#: ``json.loads``'s result: objects, arrays, strings, numbers, booleans and null.
JSON: TypeAlias = Mapping[str, "JSON"] | Sequence["JSON"] | str | int | float | bool | None
