"""Live reload: SIGHUP (or ``relay reload``) re-reads the configuration and applies it.

Strategy: each running service registers how to apply a new configuration to what
comes *next* (new connections, sessions, requests, claims), so nothing open is
dropped: the SMTP server (limits, sizes, timeouts, trusted networks, the TLS key
pair), the API (rate limits), the worker (concurrency) and logging (level, sampling).
A key that only a restart can apply (listen addresses, the database, process counts)
is named in one log line and left as it was; an invalid file is refused in one line
and the running configuration stays in force. ``relay reload`` finds running
processes by their pid files (``process.pid_file``) and sends them SIGHUP; a
supervisor passes it on to its children.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import attrs
import trio

from . import config as config_mod
from . import logging as relay_logging
from .config import Config

log = relay_logging.get_logger("relay.reload")

#: Keys a running process cannot change: reported, left as they are.
RESTART_KEYS = frozenset({
    "database.url", "database.embedded_dir", "database.pool_min_size",
    "database.pool_max_size", "database.connect_timeout", "database.acquire_timeout",
    "database.command_timeout", "database.statement_cache_size",
    "database.migrate_on_start",
    "smtp.listen", "smtp.implicit_tls_listen", "smtp.processes", "smtp.hostname",
    "smtp.listen_backlog", "smtp.shared_limits_interval", "smtp.account_cache_ttl",
    "api.listen", "api.processes", "api.metrics_auth", "api.cors_origins",
    "api.max_body_size", "api.key_cache_ttl", "api.key_cache_size",
    "metrics.listen", "process.pid_file",
    "dkim.key_encryption_key", "dkim.key_cache_ttl",
})


def changed_keys(old: Config, new: Config) -> list[str]:
    """``section.key`` for every value that differs."""
    changed = []
    for section in attrs.fields(Config):
        before, after = getattr(old, section.name), getattr(new, section.name)
        for field in attrs.fields(type(before)):
            if getattr(before, field.name) != getattr(after, field.name):
                changed.append(f"{section.name}.{field.name}")
    return changed


class Reloader:
    """What to call with a new configuration; services ``register`` as they start."""

    def __init__(self, config: Config, config_path: Path | None) -> None:
        self.config = config
        self._path = config_path
        self._appliers: list[tuple[str, Callable[[Config], None]]] = []
        self.reloads = 0

    def register(self, name: str, apply: Callable[[Config], None]) -> None:
        self._appliers.append((name, apply))

    def reload(self, environ: Mapping[str, str] | None = None) -> bool:
        """Re-read and apply; False (and nothing changed) when the file is refused."""
        try:
            new = config_mod.load(self._path, environ)
        except config_mod.ConfigError as exc:
            log.error("configuration not reloaded; the running one stays", error=str(exc))
            return False
        changed = changed_keys(self.config, new)
        frozen = [key for key in changed if key in RESTART_KEYS]
        if frozen:
            log.warning("these keys need a restart; left unchanged", keys=frozen)
            new = _keep(new, self.config, frozen)
        for name, apply in self._appliers:
            try:
                apply(new)
            except Exception as exc:
                # The config stays the old one for what failed; say what and go on.
                log.exception("reload not applied", service=name, error=str(exc))
                return False
        self.config = new
        self.reloads += 1
        log.info("configuration reloaded", changed=[k for k in changed if k not in frozen])
        return True

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reload on every SIGHUP until cancelled."""
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                self.reload()


def _keep(new: Config, old: Config, keys: list[str]) -> Config:
    """``new`` with the listed ``section.key`` values taken from ``old``."""
    sections: dict[str, dict[str, Any]] = {}
    for key in keys:
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = getattr(getattr(old, section), name)
    return attrs.evolve(new, **{
        section: attrs.evolve(getattr(new, section), **values) for section, values in sections.items()
    })


# ---------------------------------------------------------------- pid files

def pid_file(config: Config, command: str) -> Path:
    return config.resolve_path(config.process.pid_file.format(command=command))


class PidFile:
    """``process.pid_file`` for ``command``, written at start and removed at exit."""

    def __init__(self, config: Config, command: str) -> None:
        self.path = pid_file(config, command)

    def __enter__(self) -> Self:
        """Write it; a pid file that cannot be written is a warning, not a failure
        (``kill -HUP`` still reloads)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("pid file not written; relay reload will not find this process",
                        pid_file=str(self.path), error=str(exc))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.path.read_text().strip() == str(os.getpid()):
                self.path.unlink()
        except OSError:
            pass


def running(config: Config, commands: tuple[str, ...]) -> Iterator[tuple[str, int]]:
    """(command, pid) for each pid file of ``commands`` naming a live process."""
    for command in commands:
        try:
            pid = int(pid_file(config, command).read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        yield command, pid


def signal_running(config: Config, commands: tuple[str, ...]) -> list[tuple[str, int]]:
    """Send SIGHUP to every running ``relay`` of ``commands``; what was signalled."""
    signalled = []
    for command, pid in running(config, commands):
        os.kill(pid, signal.SIGHUP)
        signalled.append((command, pid))
        print(f"relay {command} (pid {pid}): told to reload its configuration")
    if not signalled:
        print("relay: no running relay found (pid files: "
              + ", ".join(str(pid_file(config, c)) for c in commands) + ")", file=sys.stderr)
    return signalled
