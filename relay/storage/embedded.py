"""The embedded PostgreSQL (``pgserver``) used when no database URL is configured.

pgserver ships real PostgreSQL binaries; its data directory lives under ``var/`` so
queued mail survives restarts. Starting it blocks for about a second: call
``start`` from a thread (``trio.to_thread.run_sync``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import attrs

from .errors import DatabaseUnavailable


@attrs.frozen
class EmbeddedDatabase:
    url: str = attrs.field(repr=False)
    data_dir: Path
    _server: object = attrs.field(repr=False, eq=False)

    def stop(self) -> None:
        """Release our handle; pgserver stops the server when the last user is gone."""
        cleanup = getattr(self._server, "cleanup", None)
        if cleanup is not None:
            cleanup()


def start(data_dir: Path) -> EmbeddedDatabase:
    """Start (or attach to) the PostgreSQL server whose data is in ``data_dir``.

    Raises:
        DatabaseUnavailable: the server could not start; the message says where to look.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        try:
            server = get_server(data_dir, cleanup_mode="stop")
        except Exception as exc:  # noqa: BLE001 - pgserver raises anything; we say what to do
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {data_dir} did not start ({exc});"
                f" see {data_dir / 'log'} or set database.url"
            ) from None
    return EmbeddedDatabase(url=server.get_uri(), data_dir=data_dir, server=server)
