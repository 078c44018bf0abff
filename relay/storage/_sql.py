"""Small SQL builders shared by the repositories (identifiers come from code, never input)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def update_set(
    allowed: Iterable[str], fields: dict[str, Any], first_param: int
) -> tuple[str, list[Any]]:
    """Build ``SET a = $n, b = $n+1, updated_at = now()`` for the given fields.

    Raises:
        ValueError: a field is not an updatable column (a programming error).
    """
    allowed = set(allowed)
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    parts = []
    values = []
    for index, (name, value) in enumerate(fields.items(), start=first_param):
        parts.append(f"{name} = ${index}")
        values.append(value)
    parts.append("updated_at = now()")
    return ", ".join(parts), values
