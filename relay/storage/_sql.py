"""Small SQL builders shared by the repositories (identifiers come from code, never input)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._bridge import Connection, Record


def update_set(
    allowed: Iterable[str], fields: Mapping[str, object], first_param: int
) -> tuple[str, list[object]]:
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


async def returned_row(conn: Connection, query: str, *args: object) -> Record:
    """The row of an ``INSERT … RETURNING`` (an upsert's too): there always is one,
    which ``conn.fetchrow``'s type (``Record | None``) cannot know."""
    row = await conn.fetchrow(query, *args)
    assert row is not None, "INSERT … RETURNING returned no row"
    return row
