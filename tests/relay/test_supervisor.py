"""Several processes per service (``smtp.processes``, ``api.processes``), as a user runs them.

``relay smtp`` / ``relay serve`` run as real subprocesses; their children share the
ports through SO_REUSEPORT. Mail goes in with smtplib, the database is read directly.
"""

from __future__ import annotations

import os
import signal
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from .test_cli import (
    PASSWORD,
    TIMEOUT,
    LineReader,
    _env,
    _event,
    _query,
    relay_async,
    start_relay,
    wait_until_serving,
)

SENDER = "app@app.example"
RAW = b"From: app@app.example\r\nTo: friend@example.net\r\nSubject: hi\r\n\r\nHello\r\n"


async def create_account(env: dict[str, str]) -> None:
    result = await relay_async(
        env, "accounts", "create", "--name", "App", "--email", SENDER,
        "--allowed-domain", "app.example", "--password-stdin", stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr


class Children:
    """What the supervisor announced on stderr: its children, by (service, index)."""

    def __init__(self, reader: LineReader) -> None:
        self.reader = reader
        self.pids: dict[tuple[str, int], int] = {}
        self.listening: list[dict[str, Any]] = []
        self.restarts: list[dict[str, Any]] = []
        for line in reader.seen:  # what was read before us
            self._note(line)

    async def wait_for(self, ready: int) -> None:
        """Read stderr until ``ready`` children (in all) have said they listen."""
        await self.until(lambda: len(self.listening) >= ready)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Read stderr until ``condition()`` holds (lines of several processes may
        arrive in any order)."""
        while not condition():
            line = await self.reader.next_line()
            assert line is not None, "\n".join(self.reader.seen)
            self._note(line)

    def _note(self, line: str) -> None:
        event = _event(line) or {}
        if event.get("event") == "process started":
            self.pids[(event["service"], event["index"])] = event["pid"]
        elif event.get("event") in ("smtp listening", "api listening"):
            self.listening.append(event)
        elif event.get("event") == "process exited; starting it again":
            self.restarts.append(event)


def submit(port: int, count: int) -> list[str]:
    """One STARTTLS + AUTH session sending ``count`` messages; the queue ids acknowledged
    (fewer when the connection is lost)."""
    acked: list[str] = []
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # relay's own self-signed pair
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.starttls(context=context)
            client.login(SENDER, PASSWORD)
            for _ in range(count):
                client.mail(SENDER)
                client.rcpt("friend@example.net")
                code, text = client.data(RAW)
                assert code == 250, text
                acked.append(text.decode().rsplit(" ", 1)[-1])
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        pass
    return acked


def stored_ids(url: str) -> set[str]:
    return {str(row[0]) for row in _query(url, "SELECT id FROM messages")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_smtp_processes_share_the_port_and_a_killed_one_is_replaced(
    database_url: str, tmp_path: Path
) -> None:
    env = _env(database_url, tmp_path, RELAY_SMTP__PROCESSES="2")
    await create_account(env)
    async with trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "smtp", env)
        children = Children(reader)
        try:
            with trio.fail_after(TIMEOUT):
                await children.wait_for(ready=2)
                ports = {tuple(e["ports"]) for e in children.listening}
                assert len(ports) == 1, "both children listen on the one port"
                [(port,)] = ports
                first = dict(children.pids)
                assert len(first) == 2 and len(set(first.values())) == 2

                acked: list[str] = []
                acked += await trio.to_thread.run_sync(submit, port, 3)
                assert len(acked) == 3

                # Senders keep opening sessions while one child is killed: a session on
                # it breaks (its message was not acknowledged), every 250 is stored.
                victim = first[("smtp", 0)]
                stop = trio.Event()

                async def keep_sending() -> None:
                    while not stop.is_set():
                        acked.extend(await trio.to_thread.run_sync(submit, port, 2))

                async with trio.open_nursery() as senders:
                    senders.start_soon(keep_sending)
                    senders.start_soon(keep_sending)
                    os.kill(victim, signal.SIGKILL)
                    with trio.move_on_after(TIMEOUT / 2) as waited:
                        await children.until(  # its replacement started and listens
                            lambda: len(children.listening) >= 3
                            and children.pids[("smtp", 0)] != victim
                        )
                    assert not waited.cancelled_caught, (
                        "no replacement listening; the supervisor and children said:\n"
                        + "\n".join(reader.seen[-60:])
                    )
                    assert [r["pid"] for r in children.restarts] == [victim]
                    replacement = children.pids[("smtp", 0)]
                    assert replacement != victim and not alive(victim)
                    before = len(acked)
                    while len(acked) < before + 8:
                        await trio.sleep(0.05)
                    stop.set()
                assert set(acked) <= stored_ids(database_url), "an acknowledged message was lost"
        finally:
            process.send_signal(signal.SIGTERM)
            nursery.start_soon(reader.rest)
        with trio.fail_after(TIMEOUT):
            assert await process.wait() == 0, "\n".join(reader.seen)
        assert not any(alive(pid) for pid in children.pids.values())
        assert sum('"process stopped"' in line for line in reader.seen) == 2


async def test_api_processes_share_the_port_and_the_operator_key_is_announced_once(
    database_url: str, tmp_path: Path
) -> None:
    env = _env(database_url, tmp_path, RELAY_SMTP__PROCESSES="2", RELAY_API__PROCESSES="2")
    async with trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "serve", env)
        try:
            with trio.fail_after(TIMEOUT):
                serving = await wait_until_serving(reader)
                children = Children(reader)
                await children.wait_for(ready=4)  # both SMTP and both API children
                async with httpx.AsyncClient(base_url=serving.api_url) as api:
                    for _ in range(10):  # new connections: the kernel spreads them
                        reply = await api.get(
                            "/api/v1/accounts",
                            headers={"Authorization": f"Bearer {serving.operator_key}",
                                     "Connection": "close"},
                        )
                        assert reply.status_code == 200, reply.text
                    # One scrape, any API child: the whole node (multiprocess mode).
                    metrics = await api.get("/metrics")
                    assert metrics.status_code == 200
                    lines = metrics.text.splitlines()
                    assert "smtp_max_connections 2000.0" in lines, "both SMTP children"
                    assert any(line.startswith("api_requests_total{") for line in lines)
                # `relay reload`: the supervisor passes SIGHUP on; every process reloads
                # (two SMTP children, two API children, and the worker in the parent).
                told = await relay_async(env, "reload")
                assert told.returncode == 0, told.stderr
                await children.until(lambda: sum(
                    '"configuration reloaded"' in line for line in reader.seen) == 5)
        finally:
            process.send_signal(signal.SIGTERM)
            nursery.start_soon(reader.rest)
        with trio.fail_after(TIMEOUT):
            assert await process.wait() == 0, "\n".join(reader.seen)
    assert sum("rk_admin_" in line for line in reader.seen) == 1
    started = [e for e in map(_event, reader.seen) if e and e.get("event") == "process started"]
    assert sorted(e["service"] for e in started) == ["api", "api", "smtp", "smtp"]


async def test_children_of_a_killed_supervisor_stop_by_themselves(
    database_url: str, tmp_path: Path
) -> None:
    """SIGKILL gives the supervisor no chance to pass SIGTERM on: each child notices it
    was re-parented (within PARENT_CHECK_INTERVAL), drains and exits."""
    env = _env(database_url, tmp_path, RELAY_SMTP__PROCESSES="2")
    async with trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "smtp", env)
        children = Children(reader)
        with trio.fail_after(TIMEOUT):
            await children.wait_for(ready=2)
            nursery.start_soon(reader.rest)
            pids = list(children.pids.values())
            process.kill()
            await process.wait()
            while any(alive(pid) for pid in pids):
                await trio.sleep(0.1)
    assert any('"supervisor gone; shutting down"' in line for line in reader.seen)
