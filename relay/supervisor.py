"""Several processes for one service, sharing its port (``smtp.processes``, ``api.processes``).

Strategy: Python runs one core per process, so a service that should use every core
runs as N child processes — each its own ``relay <service>`` with its own trio run,
asyncio host loop and connection pool — listening on the same address with
``SO_REUSEPORT``, so the kernel spreads new connections across them. This process
(the parent) starts the embedded database if there is one and applies migrations
once, creates the operator key if none exists (announced once, here), then supervises:

* a child that exits while we are not shutting down is logged and started again,
  after a pause that doubles (up to ``MAX_RESTART_DELAY``) while children keep dying
  within ``STABLE_AFTER`` seconds of starting, so a crash loop does not spin;
* SIGINT/SIGTERM to the parent is passed on as SIGTERM to every child, which drains
  as a lone process would (SMTP lets messages in DATA finish); a child still running
  after ``drain_timeout`` is killed.

A listen port of 0 is resolved here first: the parent binds it with ``SO_REUSEPORT``
(and keeps it bound, never listening, until the end, so the port stays ours) and
hands the concrete port to every child; the kernel gives connections only to
listening sockets, that is, to the children.

Each child is told it is one by the hidden ``--supervised`` option, which makes its
listeners set ``SO_REUSEPORT`` and never start children of its own.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import trio

from . import composition, metrics
from .config import Config, parse_listen
from .logging import get_logger
from .ports import bind_reuse_port
from .reload import Reloader
from .runtime import open_database, open_runtime
from .smtp.tls import ensure_key_pair

log = get_logger("relay.supervisor")

#: Seconds a child must live for its exit to count as "stable" (restart at once).
STABLE_AFTER = 10.0
#: Longest pause between restarts of a child that keeps dying.
MAX_RESTART_DELAY = 30.0
#: The first pause after a quick death.
FIRST_RESTART_DELAY = 0.5
#: Name of the temporary directory the node's processes write metrics to.
METRICS_DIR_PREFIX = "relay-metrics-"


def process_count(configured: int) -> int:
    """``*.processes``: 0 means one per core."""
    return configured or (os.cpu_count() or 1)


@attrs.frozen
class ChildSpec:
    """One supervised service: ``relay <service> --supervised`` run ``count`` times."""

    service: str
    count: int
    #: Environment overrides every child of this service gets (database URL, ports).
    env: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ChildStatistics:
    service: str
    index: int
    pid: int | None
    #: How many times this child was started (1 = never restarted).
    starts: int


class Supervisor:
    """Keeps ``ChildSpec.count`` processes of each service running until ``shutdown``."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        config_path: Path | None,
        base_env: Mapping[str, str],
        drain_timeout: float,
    ) -> None:
        self._specs = tuple(specs)
        self._config_path = config_path
        self._base_env = dict(base_env)
        self._drain_timeout = drain_timeout
        self._children: dict[tuple[str, int], ChildStatistics] = {}

    def statistics(self) -> tuple[ChildStatistics, ...]:
        return tuple(self._children.values())

    def signal_children(self, signum: int) -> None:
        """Pass ``signum`` (SIGHUP: reload) on to every running child."""
        for child in self._children.values():
            if child.pid is not None:
                try:
                    os.kill(child.pid, signum)
                except ProcessLookupError:
                    pass

    def _argv(self, service: str) -> list[str]:
        argv = [sys.executable, "-m", "relay"]
        if self._config_path is not None:
            argv += ["--config", str(self._config_path)]
        return [*argv, service, "--supervised"]

    async def run(
        self, shutdown: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start every child, keep them running, and return once all have stopped after
        ``shutdown`` is set."""
        async with trio.open_nursery() as nursery:
            for spec in self._specs:
                for index in range(spec.count):
                    nursery.start_soon(self._keep_running, spec, index, shutdown)
            task_status.started()

    async def _keep_running(self, spec: ChildSpec, index: int, shutdown: trio.Event) -> None:
        delay = FIRST_RESTART_DELAY
        starts = 0
        env = {**self._base_env, **spec.env}
        while not shutdown.is_set():
            starts += 1
            began = trio.current_time()
            # Its own session: a terminal's Ctrl-C reaches only this process, which
            # passes one SIGTERM on (a second signal would end a draining child).
            process = await trio.lowlevel.open_process(
                self._argv(spec.service), env=env, start_new_session=True
            )
            self._children[(spec.service, index)] = ChildStatistics(
                spec.service, index, process.pid, starts
            )
            log.info("process started", service=spec.service, index=index, pid=process.pid)
            code = await self._wait(process, shutdown)
            metrics.process_gone(process.pid)
            if shutdown.is_set():
                log.info("process stopped", service=spec.service, index=index,
                         pid=process.pid, returncode=code)
                return
            lived = trio.current_time() - began
            delay = FIRST_RESTART_DELAY if lived >= STABLE_AFTER else min(delay * 2, MAX_RESTART_DELAY)
            log.warning("process exited; starting it again", service=spec.service, index=index,
                        pid=process.pid, returncode=code, lived_seconds=round(lived, 1),
                        restart_in=delay)
            with trio.move_on_after(delay):
                await shutdown.wait()

    async def _wait(self, process: trio.Process, shutdown: trio.Event) -> int:
        """The child's exit status; on ``shutdown`` it gets SIGTERM, then, after
        ``drain_timeout``, SIGKILL. Cancelled, the child is killed."""
        try:
            async with trio.open_nursery() as nursery:

                async def pass_on_shutdown() -> None:
                    await shutdown.wait()
                    if process.returncode is None:
                        process.send_signal(signal.SIGTERM)
                    await trio.sleep(self._drain_timeout)
                    if process.returncode is None:
                        log.warning("process did not stop in time; killing it", pid=process.pid)
                        process.kill()

                nursery.start_soon(pass_on_shutdown)
                code = await process.wait()
                nursery.cancel_scope.cancel()
                return code
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()


async def _pass_on_reloads(supervisor: Supervisor, local: Reloader | None) -> None:
    """On SIGHUP: every child reloads, and so do this process's own services."""
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            supervisor.signal_children(signal.SIGHUP)
            if local is not None:
                local.reload()


def ensure_shared_metrics(argv: Sequence[str] | None) -> None:
    """Make this process and its children write metrics to one directory.

    prometheus-client picks multiprocess mode when it is first imported, which has
    happened by now; so when the directory is not yet set, this sets it and
    re-executes the same command (once, at start), and the new process has it from
    its first line. The supervisor removes the directory when it stops.
    """
    if os.environ.get(metrics.MULTIPROC_ENV):
        return
    directory = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)
    os.environ[metrics.MULTIPROC_ENV] = directory
    arguments = list(sys.argv[1:] if argv is None else argv)
    os.execv(sys.executable, [sys.executable, "-m", "relay", *arguments])


def _remove_metrics_dir() -> None:
    directory = os.environ.get(metrics.MULTIPROC_ENV, "")
    if Path(directory).name.startswith(METRICS_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def reserve_port(listen: str) -> tuple[str, socket.socket | None]:
    """``listen`` with port 0 replaced by a port bound here (``SO_REUSEPORT``, not
    listening) and the socket that holds it; other addresses come back unchanged."""
    host, port = parse_listen(listen)
    if port != 0:
        return listen, None
    sock = bind_reuse_port(host, 0)
    chosen = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{chosen}", sock


def supervised_services(config: Config, services: Sequence[str]) -> dict[str, int]:
    """Which of ``services`` run as several processes, and how many."""
    counts = {"smtp": process_count(config.smtp.processes), "api": process_count(config.api.processes)}
    return {s: counts[s] for s in services if counts.get(s, 1) > 1}


async def serve_supervised(
    config: Config,
    services: Sequence[str],
    *,
    config_path: Path | None,
    announce: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
    task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``relay serve|smtp|api`` when some service runs as several processes.

    The services with ``*.processes`` > 1 run as supervised children; the others
    (the worker, say) run in this process, as ``relay serve`` would run them. Returns
    after SIGINT/SIGTERM once every child and local service has drained.
    """
    counts = supervised_services(config, services)
    local = tuple(s for s in services if s not in counts)
    held: list[socket.socket] = []
    async with open_database(config) as url:
        local_config = attrs.evolve(
            config, database=attrs.evolve(config.database, url=url, migrate_on_start=False)
        )
        await _before_children(local_config, counts, announce)
        env = {"RELAY_DATABASE__URL": url, "RELAY_DATABASE__MIGRATE_ON_START": "false"}
        try:
            specs = _child_specs(config, counts, env, held)
            supervisor = Supervisor(
                specs, config_path=config_path,
                base_env=dict(os.environ if environ is None else environ),
                drain_timeout=config.smtp.shutdown_timeout + 10,
            )
            await _supervise(supervisor, local_config, local, config_path, task_status)
        finally:
            for sock in held:
                sock.close()
            _remove_metrics_dir()


async def _before_children(
    config: Config, counts: Mapping[str, int], announce: Callable[[str], None] | None
) -> None:
    """Once, here: children starting together must not race to create the first
    operator key or the self-signed certificate."""
    async with open_runtime(config) as runtime:
        secret = await composition.ensure_operator_key(runtime.storage)
    if secret is not None and announce is not None:
        announce(secret)
    if "smtp" in counts:
        await trio.to_thread.run_sync(ensure_key_pair, config)


def _child_specs(
    config: Config, counts: Mapping[str, int], env: Mapping[str, str], held: list[socket.socket]
) -> list[ChildSpec]:
    """The children to start, each told its concrete listen addresses; the sockets
    that reserve a port 0 are added to ``held`` (closed by the caller at the end)."""
    specs = []
    if "smtp" in counts:
        ports = {}
        for key, listen in (("LISTEN", config.smtp.listen),
                            ("IMPLICIT_TLS_LISTEN", config.smtp.implicit_tls_listen)):
            if listen:
                ports[f"RELAY_SMTP__{key}"], sock = reserve_port(listen)
                held.extend([sock] if sock else [])
        specs.append(ChildSpec("smtp", counts["smtp"], {**env, **ports}))
    if "api" in counts:
        listen, sock = reserve_port(config.api.listen)
        held.extend([sock] if sock else [])
        specs.append(ChildSpec("api", counts["api"], {**env, "RELAY_API__LISTEN": listen}))
    for spec in specs:
        log.info("starting processes", service=spec.service, count=spec.count,
                 **{k.lower(): v for k, v in spec.env.items() if k.endswith("LISTEN")})
    return specs


async def _supervise(
    supervisor: Supervisor,
    local_config: Config,
    local: tuple[str, ...],
    config_path: Path | None,
    task_status: trio.TaskStatus[Supervisor],
) -> None:
    """Run the children and the ``local`` services until SIGINT/SIGTERM, passing
    SIGHUP on to both; return once all have drained."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(composition.watch_signals, shutdown)
        await nursery.start(supervisor.run, shutdown)
        started = None
        if local:
            started = await nursery.start(
                functools.partial(composition.serve, local_config, services=local,
                                  handle_signals=False, config_path=config_path)
            )
        local_reloader = started.reloader if started is not None else None
        reloads = trio.CancelScope()

        async def pass_on_reloads() -> None:
            with reloads:
                await _pass_on_reloads(supervisor, local_reloader)

        nursery.start_soon(pass_on_reloads)
        task_status.started(supervisor)
        await shutdown.wait()
        reloads.cancel()
        if started is not None:
            started.shutdown.set()
