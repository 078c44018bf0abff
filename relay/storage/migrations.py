"""Schema migrations with yoyo (synchronous: run them from a thread inside trio).

yoyo talks to PostgreSQL through psycopg2, separate from the asyncpg pool; the
migrations live in ``sql/`` as numbered ``.sql`` files, each with a
``.rollback.sql``, and are append-only once landed.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import attrs
from yoyo import get_backend, read_migrations

from ..config import PROJECT_ROOT
from .errors import DatabaseUnavailable

#: Where an installed (non-editable) relay finds its migrations: setup.cfg's
#: ``data_files`` put them under the environment's prefix.
INSTALLED_SQL = Path("share") / "relay" / "sql"


def find_migrations_dir(root: Path = PROJECT_ROOT, prefix: Path = Path(sys.prefix)) -> Path:
    """``sql/`` beside the package in a checkout, else the installed copy."""
    checkout = root / "sql"
    return checkout if checkout.is_dir() else prefix / INSTALLED_SQL


MIGRATIONS_DIR = find_migrations_dir()


@attrs.frozen
class MigrationStatus:
    id: str
    applied: bool


def _backend(url: str):  # type: ignore[no-untyped-def]
    try:
        return get_backend(url)
    except Exception as exc:  # noqa: BLE001 - yoyo raises the driver's own errors
        parts = urlsplit(url)
        where = parts.hostname or dict(parse_qsl(parts.query)).get("host", "localhost")
        port = f":{parts.port}" if parts.port else ""
        raise DatabaseUnavailable(
            f"cannot connect to {where}{port}{parts.path} to run migrations"
            f" ({type(exc).__name__}); check database.url and that PostgreSQL is running"
        ) from None


def _migrations(directory: Path = MIGRATIONS_DIR):  # type: ignore[no-untyped-def]
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: migrations folder not found")
    return read_migrations(str(directory))


@contextlib.contextmanager
def _connected(url: str):  # type: ignore[no-untyped-def]
    """A yoyo backend whose connection is closed afterwards (an open one would, for
    instance, keep a template database busy)."""
    backend = _backend(url)
    try:
        yield backend
    finally:
        backend.connection.close()


def apply(url: str) -> list[str]:
    """Apply every pending migration; returns the ids applied."""
    migrations = _migrations()
    with _connected(url) as backend, backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def rollback(url: str, count: int = 1) -> list[str]:
    """Roll back the newest ``count`` applied migrations; returns their ids."""
    migrations = _migrations()
    with _connected(url) as backend, backend.lock():
        chosen = backend.to_rollback(migrations)[:count]
        backend.rollback_migrations(chosen)
    return [m.id for m in chosen]


def status(url: str) -> list[MigrationStatus]:
    migrations = _migrations()
    with _connected(url) as backend:
        applied = backend.get_applied_migration_hashes()
    return [MigrationStatus(m.id, m.hash in applied) for m in migrations]
