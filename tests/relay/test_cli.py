"""The ``relay`` command, run as a real subprocess against the test PostgreSQL.

Every run gets ``RELAY_DATABASE__URL`` (so the embedded database under ``var/`` is
never started), a temporary working directory, and temporary TLS/embedded folders,
with any ``RELAY_*``/``DATABASE_URL`` from the developer's shell removed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import psycopg2
import pytest
import trio

from relay import hashed_secrets
from relay.config import load, redacted
from relay.storage import Storage

RELAY = [sys.executable, "-m", "relay"]
PASSWORD = "correct horse battery staple"
#: Generous: a cold interpreter, bcrypt and a TLS key pair on a loaded CI machine.
TIMEOUT = 120
OPERATOR_KEY = re.compile(r"rk_admin_[A-Za-z0-9_-]+")


def _env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k != "DATABASE_URL"
    }
    env.update(
        RELAY_DATABASE__URL=database_url,
        RELAY_DATABASE__EMBEDDED_DIR=str(tmp_path / "pgdata"),
        RELAY_TLS__SELF_SIGNED_DIR=str(tmp_path / "tls"),
        RELAY_SMTP__HOSTNAME="relay.test",
        RELAY_SMTP__LISTEN="127.0.0.1:0",
        RELAY_API__LISTEN="127.0.0.1:0",
        RELAY_LOGGING__FORMAT="json",
        RELAY_PROCESS__PID_FILE=str(tmp_path / "relay-{command}.pid"),
    )
    env.update(extra)
    return env


def relay(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RELAY, *args],
        check=False,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )


async def relay_async(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[bytes]:
    """``relay`` from inside a trio test, without blocking the event loop."""
    with trio.fail_after(TIMEOUT):
        return await trio.run_process(
            [*RELAY, *args],
            env=env,
            stdin=stdin.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------- relay config


def test_config_prints_the_redacted_configuration(tmp_path: Path) -> None:
    url = "postgresql://relay:s3cret-Pa55@db.invalid:5432/relay"
    env = _env(url, tmp_path, RELAY_SMTP__MAX_CONNECTIONS="42")
    result = relay(env, "config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "s3cret-Pa55" not in result.stdout + result.stderr
    printed = tomllib.loads(result.stdout)
    assert printed["database"]["url"] == "postgresql://relay:***@db.invalid:5432/relay"
    assert printed["smtp"]["max_connections"] == 42
    # The output is TOML holding exactly the effective configuration.
    expected = json.loads(json.dumps(redacted(load(None, env))))
    assert printed == expected


# ---------------------------------------------------------------- configuration errors


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("command", [["config"], ["serve"], ["migrate", "status"]])
@pytest.mark.parametrize(
    ("extra_env", "config_file", "names"),
    [
        ({"RELAY_SMTP__MAX_CONNECTIONS": "lots"}, None, "RELAY_SMTP__MAX_CONNECTIONS"),
        ({"RELAY_SMTP__LISTEN": "127.0.0.1:99999"}, None, "smtp.listen"),
        ({"RELAY_SMPT__LISTEN": "127.0.0.1:25"}, None, "RELAY_SMPT__LISTEN"),
        ({}, "[smtp]\nmax_connections = -1\n", "smtp.max_connections"),
        ({}, "[smtp\n", "bad.toml"),
        ({}, "missing", "nowhere.toml"),
    ],
)
def test_configuration_error_is_one_line_and_exit_code_2(
    tmp_path: Path,
    command: list[str],
    extra_env: dict[str, str],
    config_file: str | None,
    names: str,
) -> None:
    args: list[str] = []
    if config_file == "missing":
        args = ["-c", str(tmp_path / "nowhere.toml")]
    elif config_file is not None:
        args = ["-c", str(_write(tmp_path, config_file))]
    # An unreachable database: the error must come before anything connects.
    env = _env("postgresql://relay@db.invalid/relay", tmp_path, **extra_env)
    result = relay(env, *args, *command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = _lines(result.stderr)
    assert line.startswith("relay: configuration error: ")
    assert names in line
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- relay migrate


def _status(env: dict[str, str]) -> dict[str, str]:
    result = relay(env, "migrate", "status")
    assert result.returncode == 0, result.stderr
    states = {}
    for line in _lines(result.stdout):
        state, migration = line.split()
        states[migration] = state
    assert states, "migrate status listed no migrations"
    return states


def _migration_tables(url: str) -> set[str]:
    rows = _query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows if "yoyo" not in name}


def test_migrate_status_up_down_round_trip(empty_database_url: str, tmp_path: Path) -> None:
    env = _env(empty_database_url, tmp_path)

    before = _status(env)
    assert set(before.values()) == {"pending"}
    ids = list(before)
    assert ids == sorted(ids)
    assert _migration_tables(empty_database_url) == set()

    up = relay(env, "migrate", "up")
    assert up.returncode == 0, up.stderr
    assert _lines(up.stdout) == ["applied: " + ", ".join(ids)]
    assert set(_status(env).values()) == {"applied"}
    assert {"accounts", "messages", "admin_keys"} <= _migration_tables(empty_database_url)

    again = relay(env, "migrate", "up")
    assert _lines(again.stdout) == ["applied: nothing to apply"]

    down = relay(env, "migrate", "down")
    assert down.returncode == 0, down.stderr
    assert _lines(down.stdout) == [f"rolled back: {ids[-1]}"]
    after_one = _status(env)
    assert after_one[ids[-1]] == "pending"
    assert all(after_one[i] == "applied" for i in ids[:-1])

    all_down = relay(env, "migrate", "down", "--steps", str(len(ids) + 5))
    assert all_down.returncode == 0, all_down.stderr
    assert _lines(all_down.stdout) == ["rolled back: " + ", ".join(reversed(ids[:-1]))]
    assert set(_status(env).values()) == {"pending"}
    assert _migration_tables(empty_database_url) == set()

    nothing = relay(env, "migrate", "down")
    assert _lines(nothing.stdout) == ["rolled back: nothing to roll back"]

    up_again = relay(env, "migrate", "up")
    assert up_again.returncode == 0, up_again.stderr
    assert set(_status(env).values()) == {"applied"}


def test_migrate_down_with_zero_steps_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    result = relay(_env(empty_database_url, tmp_path), "migrate", "down", "--steps", "0")
    assert result.returncode == 1
    [line] = _lines(result.stderr)
    assert line.startswith("relay: ") and "--steps" in line


# ---------------------------------------------------------------- relay accounts create


async def test_accounts_create_prints_id_and_key_and_stores_only_hashes(
    database_url: str, tmp_path: Path, storage: Storage
) -> None:
    env = _env(database_url, tmp_path)
    result = await relay_async(
        env, "accounts", "create", "--name", "Alice", "--email", "Alice@Example.com",
        "--allowed-domain", "Example.COM", "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    account_id = uuid.UUID(printed["id"])
    api_key = printed["api_key"]
    assert api_key.startswith(hashed_secrets.ACCOUNT_KEY_PREFIX)
    assert printed["email"] == "Alice@Example.com"

    account = await storage.accounts.get(account_id)
    assert account is not None
    assert account.name == "Alice"
    assert account.allowed_domains == ("example.com",)
    assert account.password_hash.startswith("$2b$")
    assert PASSWORD not in account.password_hash
    assert await trio.to_thread.run_sync(hashed_secrets.check_password, PASSWORD, account.password_hash)
    assert account.api_key_prefix == api_key[: hashed_secrets.VISIBLE_CHARS]
    by_key = await storage.accounts.get_by_api_key_hash(hashlib.sha256(api_key.encode()).digest())
    assert by_key is not None and by_key.id == account_id

    [(row_text,)] = _query(database_url, "SELECT row_to_json(a)::text FROM accounts a")
    assert PASSWORD not in row_text
    assert api_key not in row_text


async def test_accounts_create_duplicate_email_in_other_case_fails_in_one_line(
    database_url: str, tmp_path: Path, storage: Storage
) -> None:
    env = _env(database_url, tmp_path)
    first = await relay_async(
        env, "accounts", "create", "--name", "A", "--email", "alice@example.com",
        "--password-stdin", stdin=PASSWORD + "\n",
    )
    assert first.returncode == 0, first.stderr

    second = await relay_async(
        env, "accounts", "create", "--name", "B", "--email", "ALICE@Example.com",
        "--password-stdin", stdin=PASSWORD + "\n",
    )
    assert second.returncode == 1
    assert second.stdout == b""  # no key is shown for an account that was not made
    [line] = second.stderr.decode().splitlines()
    assert line.startswith("relay: ") and "ALICE@Example.com" in line and "already exists" in line
    assert (await storage.accounts.get_by_email("alice@example.com")).name == "A"  # type: ignore[union-attr]
    assert len(await storage.accounts.list()) == 1


def test_accounts_create_refuses_an_empty_password(database_url: str, tmp_path: Path) -> None:
    result = relay(
        _env(database_url, tmp_path), "accounts", "create", "--name", "A",
        "--email", "a@example.com", "--password-stdin", stdin="\n",
    )
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = _lines(result.stderr)
    assert line.startswith("relay: ") and "password" in line
    assert _query(database_url, "SELECT count(*) FROM accounts") == [(0,)]


# ---------------------------------------------------------------- relay admin-key create


def test_admin_key_create_prints_the_key_and_stores_only_its_sha256(
    database_url: str, tmp_path: Path
) -> None:
    result = relay(_env(database_url, tmp_path), "admin-key", "create", "--name", "ops")
    assert result.returncode == 0, result.stderr
    [secret] = _lines(result.stdout)
    assert secret.startswith(hashed_secrets.OPERATOR_KEY_PREFIX)
    assert len(secret) > len(hashed_secrets.OPERATOR_KEY_PREFIX) + 32
    assert secret not in result.stderr

    [(name, key_hash, key_prefix, row_text)] = _query(
        database_url,
        "SELECT name, key_hash, key_prefix, row_to_json(k)::text FROM admin_keys k",
    )
    assert name == "ops"
    assert bytes(key_hash) == hashlib.sha256(secret.encode()).digest()
    assert key_prefix == secret[: hashed_secrets.VISIBLE_CHARS]
    assert secret not in row_text


# ---------------------------------------------------------------- relay serve


class LineReader:
    """Lines from a process's stderr, kept for failure messages."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.seen: list[str] = []

    async def next_line(self) -> str | None:
        """The next line, or None at end of stream."""
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                if not self._buffer:
                    return None
                self._buffer += b"\n"
                break
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\n")
        line = raw.decode("utf-8", "replace")
        self.seen.append(line)
        return line

    async def until(self, wanted: Callable[[str], bool], what: str) -> str:
        while (line := await self.next_line()) is not None:
            if wanted(line):
                return line
        raise AssertionError(f"stderr ended before {what}:\n" + "\n".join(self.seen))

    async def rest(self) -> None:
        while await self.next_line() is not None:
            pass


async def start_relay(
    nursery: trio.Nursery, command: str, env: dict[str, str], *, options: tuple[str, ...] = ()
) -> tuple[trio.Process, LineReader]:
    """``relay [options] <command>`` as a child process of ``nursery``, its stderr to be read."""
    process: trio.Process = await nursery.start(functools.partial(
        trio.run_process, [*RELAY, *options, command], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
    ))
    assert process.stderr is not None
    return process, LineReader(process.stderr)


@attrs.frozen
class Serving:
    """What a starting ``relay serve`` announced on stderr."""

    operator_key: str = attrs.field(repr=False)
    smtp_port: int
    api_url: str


async def wait_until_serving(reader: LineReader) -> Serving:
    """Read stderr until the operator key, the SMTP port and the API URL are known."""
    operator_key, smtp_port, api_url = "", None, None
    while smtp_port is None or api_url is None or not operator_key:
        line = await reader.next_line()
        assert line is not None, "\n".join(reader.seen)
        if (found := OPERATOR_KEY.search(line)):
            operator_key = found.group(0)
        event = _event(line) or {}
        if event.get("event") == "smtp listening":
            smtp_port = event["ports"][0]
        if event.get("event") == "api listening":
            api_url = event["url"]
    return Serving(operator_key, smtp_port, api_url)


def _event(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _is_event(name: str) -> Callable[[str], bool]:
    return lambda line: (_event(line) or {}).get("event") == name


async def _serve_until_sigterm(env: dict[str, str], command: str = "serve") -> tuple[list[str], int]:
    """Start ``relay <command>``, wait for ``relay ready``, SIGTERM it, return stderr and status."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*RELAY, command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        assert process.stderr is not None
        reader = LineReader(process.stderr)
        # On a timeout the cancellation also kills the child (run_process does that).
        with trio.fail_after(TIMEOUT):
            await reader.until(_is_event("relay ready"), "relay ready")
            process.send_signal(signal.SIGTERM)
            await reader.rest()
            returncode = await process.wait()
    return reader.seen, returncode


@pytest.mark.parametrize(("uvloop", "loop"), [("0", "asyncio"), ("1", "uvloop")])
async def test_serve_bootstraps_an_operator_key_and_stops_on_sigterm(
    database_url: str, tmp_path: Path, uvloop: str, loop: str
) -> None:
    """On either host loop — a plain install (asyncio's) and relay[uvloop] (the
    container image's), which the ready line names."""
    env = _env(database_url, tmp_path, RELAY_SMTP__LISTEN="127.0.0.1:0", RELAY_UVLOOP=uvloop)

    lines, returncode = await _serve_until_sigterm(env)
    assert returncode == 0, "\n".join(lines)
    [ready] = [e for e in map(_event, lines) if e and e.get("event") == "relay ready"]
    assert ready["event_loop"] == loop
    keys = [key for line in lines for key in OPERATOR_KEY.findall(line)]
    assert len(keys) == 1, "\n".join(lines)
    [secret] = keys
    [(key_hash,)] = _query(database_url, "SELECT key_hash FROM admin_keys WHERE revoked_at IS NULL")
    assert bytes(key_hash) == hashlib.sha256(secret.encode()).digest()

    events = [e["event"] for e in map(_event, lines) if e is not None and "event" in e]
    assert "relay ready" in events
    assert events[-1] == "stopped", events
    shutting_down = [e for e in map(_event, lines) if e and e.get("event") == "shutting down"]
    assert [e.get("signal") for e in shutting_down] == ["SIGTERM"]
    assert not any("Traceback" in line for line in lines)

    # A second start finds the key and prints none.
    lines, returncode = await _serve_until_sigterm(env)
    assert returncode == 0, "\n".join(lines)
    assert not any(OPERATOR_KEY.search(line) for line in lines), "\n".join(lines)
    assert _query(database_url, "SELECT count(*) FROM admin_keys") == [(1,)]


async def test_serve_prints_no_key_when_an_operator_key_exists(
    database_url: str, tmp_path: Path
) -> None:
    env = _env(database_url, tmp_path, RELAY_SMTP__LISTEN="127.0.0.1:0")
    created = await relay_async(env, "admin-key", "create")
    assert created.returncode == 0, created.stderr

    lines, returncode = await _serve_until_sigterm(env)
    assert returncode == 0, "\n".join(lines)
    assert not any(OPERATOR_KEY.search(line) for line in lines), "\n".join(lines)
    assert _query(database_url, "SELECT count(*) FROM admin_keys") == [(1,)]


@pytest.mark.parametrize("command", ["smtp", "api", "worker"])
async def test_each_service_runs_alone(database_url: str, tmp_path: Path, command: str) -> None:
    env = _env(database_url, tmp_path)
    lines, returncode = await _serve_until_sigterm(env, command)
    assert returncode == 0, "\n".join(lines)
    [ready] = [e for e in map(_event, lines) if e and e.get("event") == "relay ready"]
    assert ready["services"] == [command]
    started = {e.get("event") for e in map(_event, lines) if e}
    others = {"smtp": "smtp listening", "api": "api listening", "worker": "worker starting"}
    assert others[command] in started
    assert not (started & {v for k, v in others.items() if k != command}), started
