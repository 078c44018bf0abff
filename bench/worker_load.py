"""Delivery worker load generator: queue N messages, deliver them, report messages/s.

Starts its own embedded PostgreSQL (pgserver, in a temporary directory), a local
upstream sink on 127.0.0.1 and one or more workers, queues ``--messages`` messages of
``--size`` bytes for one account whose default provider points at the sink, then times
the workers from their start until every message is ``sent``. Traffic only goes to
127.0.0.1; the run is bounded by ``--max-seconds``.

For ``--provider mailgun``/``sendgrid`` the sink speaks HTTP/1.1 (h11) and answers
like Mailgun's messages.mime (raw MIME upload: the cheapest provider to build for) or
SendGrid's mail/send (JSON built from the parsed message: the most expensive). For
``--provider smtp`` it is an SMTP server on ``proto.ServerConnection`` (plaintext,
no AUTH; PIPELINING and CHUNKING offered unless ``--smtp-data``) that accepts every
message, and the worker delivers through the smtp provider, reusing its sessions.

Where the sink runs (``--sink``):

* ``inprocess`` (default): a trio server in this process, sharing its CPU with the
  workers (it takes about half of it).
* ``external``: its own OS process. For ``--provider smtp`` that is Postfix's
  ``smtp-sink`` when it is installed (PIPELINING, no CHUNKING, so the worker uses
  DATA), else the sink above started as ``worker_load.py --serve-sink``;
  ``--sink-program`` forces one. The sink's own count is not used: messages are
  counted by their status in the database.

Where the workers run:

* ``--workers N`` (default 1): N workers in this process, sharing its storage pool.
* ``--processes N``: N worker processes (``worker_load.py --child``, each its own
  ``relay.storage.host.run`` loop and pool) on the same database. The messages are
  queued first; the clock starts when every child has connected and is told to go,
  and stops when the database says every message is ``sent`` (children's start-up,
  interpreter and imports, is not timed). Children stop gracefully when told (stdin)
  and are killed if they do not exit in time. ``--py-spy PREFIX`` samples each child
  with py-spy while the clock runs (raw collapsed stacks, ``PREFIX-r<round>-<n>.txt``).

``--processes`` takes a list (``0,1,2``; 0 means ``--workers`` in this process) and
``--repeat K`` repeats it: each round queues ``--messages`` for a new account on the
same database and sink, so rounds of one run compare under the same conditions. One
JSON line per round; ``cpu_seconds`` is the CPU each role (this process, PostgreSQL,
an external sink, the worker processes) spent while the clock ran, read from
``/proc``, which says where the cores went on a shared machine better than wall time.

Examples:
  python bench/worker_load.py --messages 2000
  python bench/worker_load.py --messages 2000 --provider sendgrid --concurrency 32
  python bench/worker_load.py --messages 2000 --workers 2
  python bench/worker_load.py --messages 2000 --provider smtp
  python bench/worker_load.py --messages 6000 --provider smtp --sink external --processes 2
  python bench/worker_load.py --messages 6000 --provider smtp --sink external --processes 0,1,2 --repeat 3
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import h11
import trio

import proto

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay import models
from relay.config import Config, WorkerConfig
from relay.storage import host, migrations, open_storage

#: Where Postfix's smtp-sink may live when it is not on PATH.
SMTP_SINK_PATHS = ("smtp-sink", "/usr/sbin/smtp-sink", "/usr/lib/postfix/smtp-sink")
#: Prefix of the lines children and the subprocess sink write for us (logs go to stdout too).
TAG = "BENCH "
#: Seconds a started child may take to import, connect and say it is ready.
CHILD_START_TIMEOUT = 60.0
#: Seconds stopped children may take to write their last verdicts and exit.
CHILD_STOP_TIMEOUT = 30.0


async def sink(stream: trio.SocketStream, status: int, counter: list[int]) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(1 << 16))
            elif isinstance(event, h11.EndOfMessage):
                counter[0] += 1
                body = b'{"id": "<x@sink>", "message": "Queued. Thank you."}'
                await stream.send_all(conn.send(h11.Response(
                    status_code=status, headers=[("content-length", str(len(body)))])))
                await stream.send_all(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except (h11.RemoteProtocolError, trio.BrokenResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def smtp_sink(stream: trio.SocketStream, chunking: bool, counter: list[int], sessions: list[int]) -> None:
    """Accept everything; count messages (``counter``) and sessions (``sessions``)."""
    sessions[0] += 1
    conn = proto.ServerConnection("sink.bench", extensions=proto.Extensions(
        starttls=False, auth=(), chunking=chunking), auth_requires_tls=False)
    try:
        await stream.send_all(conn.send(proto.Reply(220, "sink.bench ESMTP")))
        while conn.state not in (proto.CLOSING, proto.CLOSED):
            event = conn.next_event()
            if event is proto.NEED_DATA:
                conn.receive_data(await stream.receive_some(1 << 16))
            elif isinstance(event, (proto.AutoReply, proto.ProtocolViolation)):
                await stream.send_all(conn.send(event.reply))
            elif isinstance(event, (proto.Ehlo, proto.Helo)):
                await stream.send_all(conn.send(proto.Reply(250, "")))
            elif isinstance(event, proto.DataStart):
                await stream.send_all(conn.send(proto.Reply(354, "go ahead")))
            elif isinstance(event, proto.Quit):
                await stream.send_all(conn.send(proto.Reply(221, "bye", "2.0.0")))
            elif isinstance(event, proto.EndOfData):
                counter[0] += 1
                await stream.send_all(conn.send(event.refusal or proto.Reply(250, "queued", "2.0.0")))
            elif isinstance(event, proto.Event) and not isinstance(event, (proto.Data, proto.ConnectionClosed)):
                await stream.send_all(conn.send(proto.Reply(250, "OK", "2.0.0")))
    except (proto.RemoteProtocolError, trio.BrokenResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


def sink_handler(args: argparse.Namespace, counter: list[int], sessions: list[int]) -> Any:
    if args.provider == "smtp":
        return functools.partial(smtp_sink, chunking=not args.smtp_data, counter=counter, sessions=sessions)
    return functools.partial(sink, status=202 if args.provider == "sendgrid" else 200, counter=counter)


def make_body(n: int, size: int) -> bytes:
    head = (b"From: bench@example.com\r\nTo: r0@example.net\r\nSubject: bench %d\r\n"
            b"Message-ID: <%d@bench>\r\n\r\n" % (n, n))
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def worker_config(args: argparse.Namespace) -> WorkerConfig:
    return WorkerConfig(batch_size=args.batch, concurrency=args.concurrency,
                        per_provider_concurrency=args.concurrency, poll_interval=0.05)


def say(what: str, **fields: object) -> None:
    """One line for the parent, told apart from the logs by ``TAG``."""
    print(TAG + json.dumps({"what": what, **fields}), flush=True)


# ------------------------------------------------------------ subprocesses


class Lines:
    """Drain a child's stdout: our tagged lines go to ``said``, the rest (logs) to ``tail``."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.said: dict[str, dict[str, Any]] = {}
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self._changed = trio.Event()

    async def drain(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if text.startswith(TAG):
                    message = json.loads(text[len(TAG):])
                    self.said[message["what"]] = message
                else:
                    self.tail.append(text)
            self._changed.set()
            self._changed = trio.Event()
        self._changed.set()

    async def wait_said(self, what: str) -> dict[str, Any]:
        while what not in self.said:
            if self.process.poll() is not None:
                raise RuntimeError(f"process {self.process.pid} exited ({self.process.returncode}) "
                                   f"before saying {what!r}; its last lines: {list(self.tail)}")
            with trio.move_on_after(0.2):
                await self._changed.wait()
        return self.said[what]


async def stop_process(process: trio.Process, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped. Shielded."""
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with trio.move_on_after(grace):
                await process.wait()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone), from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
    return found


class CpuMeter:
    """CPU seconds each role (a set of processes) spent between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.roles: dict[str, Any] = {}
        self._start: dict[int, float] = {}
        self.spent: dict[str, float] = {}

    def _pids(self) -> dict[str, list[int]]:
        return {role: pids() for role, pids in self.roles.items()}

    def start(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pids in self._pids().values() for pid in pids}

    def stop(self) -> None:
        self.spent = {role: round(sum(cpu_seconds(pid) - self._start.get(pid, 0.0) for pid in pids), 2)
                      for role, pids in self._pids().items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_accepting(port: int, process: trio.Process, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the sink exited ({process.returncode}) before accepting on port {port}")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.02)
                continue
            await trio.aclose_forcefully(stream)
            return


def find_smtp_sink() -> str | None:
    for name in SMTP_SINK_PATHS:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.asynccontextmanager
async def external_sink(args: argparse.Namespace) -> AsyncIterator[tuple[int, str, int]]:
    """Start the sink in its own process; yield ``(port, description, pid)`` once it accepts."""
    program = args.sink_program
    postfix = find_smtp_sink() if args.provider == "smtp" and program != "python" else None
    if program == "smtp-sink" and postfix is None:
        raise SystemExit("--sink-program smtp-sink: no smtp-sink found (Postfix) or provider is not smtp")
    if postfix is not None:
        port = free_port()
        # -u: smtp-sink refuses to run as root without dropping privileges after binding.
        # -m: its default of 256 sessions would stall --processes x --concurrency above that.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        command = [postfix, *user, "-m", "4096", f"127.0.0.1:{port}", "1000"]
        description = f"smtp-sink (Postfix, {postfix}; PIPELINING, no CHUNKING: DATA)"
        stdout = subprocess.DEVNULL
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-sink", "--provider", args.provider,
                   *(["--smtp-data"] if args.smtp_data else [])]
        kind = "proto SMTP" if args.provider == "smtp" else "h11 HTTP"
        description = f"worker_load.py --serve-sink ({kind} sink in a subprocess)"
        stdout = subprocess.PIPE
    process = await trio.lowlevel.open_process(command, stdout=stdout, cwd=ROOT)
    try:
        async with trio.open_nursery() as nursery:
            if postfix is None:
                lines = Lines(process)
                nursery.start_soon(lines.drain)
                with trio.fail_after(CHILD_START_TIMEOUT):
                    port = (await lines.wait_said("listening"))["port"]
            await wait_accepting(port, process)
            yield port, f"{description}, port {port}", process.pid
            nursery.cancel_scope.cancel()
    finally:
        await stop_process(process)


async def serve_sink(args: argparse.Namespace) -> None:
    """``--serve-sink``: the in-process sink on its own, until killed."""
    counter, sessions = [0], [0]
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    say("listening", port=listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(sink_handler(args, counter, sessions), listeners)


async def child(args: argparse.Namespace) -> None:
    """``--child URL``: one worker process. stdin: ``go`` starts it, ``stop`` (or EOF) stops it."""
    from relay import composition
    from relay import logging as relay_logging
    from relay.worker import run_worker

    # Log as `relay worker` does (its configuration, JSON lines when not on a terminal),
    # to the pipe the parent drains: structlog's unconfigured default (a coloured
    # console renderer) costs twice as much per line and is not what runs in production.
    relay_logging.configure(Config().logging, stream=sys.stdout)

    stdin = trio.lowlevel.FdStream(os.dup(0))
    received = bytearray()

    async def wait_for(word: bytes) -> None:
        while word not in received:
            chunk = await stdin.receive_some(256)
            if not chunk:
                return
            received.extend(chunk)

    async with open_storage(args.child, min_size=2, max_size=args.pool_size) as storage:
        runtime = composition.Runtime(config=Config(worker=worker_config(args)), database_url=args.child, storage=storage)
        say("ready", pid=os.getpid())
        await wait_for(b"go")
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            worker = await nursery.start(functools.partial(run_worker, runtime, stop=stop, run_housekeeping=False))
            await wait_for(b"stop")
            stop.set()
        stats = worker.statistics()
        say("stopped", pid=os.getpid(), sent=stats.sent, deferred=stats.deferred, failed=stats.failed,
            leases_lost=stats.leases_lost)
    await stdin.aclose()


# ------------------------------------------------------------ the run


async def all_done(storage: Any, account_id: Any, messages: int) -> dict[models.MessageStatus, int]:
    """Poll until every message of the account is sent or failed; return the last counts."""
    while True:
        counts = await storage.messages.count_by_status(account_id=account_id)
        if counts[models.MessageStatus.SENT] + counts[models.MessageStatus.FAILED] >= messages:
            return counts
        await trio.sleep(0.05)


async def run_in_process(
    args: argparse.Namespace, runtime: Any, account_id: Any, meter: CpuMeter
) -> tuple[float | None, list[dict[str, Any]]]:
    from relay.worker import run_worker

    meter.start()
    started = time.perf_counter()
    elapsed = None
    with trio.move_on_after(args.max_seconds):
        async with trio.open_nursery() as running:
            for _ in range(args.workers):
                await running.start(functools.partial(run_worker, runtime, run_housekeeping=False))
            await all_done(runtime.storage, account_id, args.messages)
            elapsed = time.perf_counter() - started
            meter.stop()
            running.cancel_scope.cancel()
    return elapsed, []


async def run_processes(
    args: argparse.Namespace, processes: int, url: str, storage: Any, account_id: Any, meter: CpuMeter, name: str
) -> tuple[float | None, list[dict[str, Any]]]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", url, "--batch", str(args.batch),
               "--concurrency", str(args.concurrency), "--pool-size", str(args.pool_size)]
    children: list[Lines] = []
    profilers: list[trio.Process] = []
    elapsed = None
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(processes):
                process = await trio.lowlevel.open_process(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
                children.append(Lines(process))
                nursery.start_soon(children[-1].drain)
            with trio.fail_after(CHILD_START_TIMEOUT):
                for c in children:
                    await c.wait_said("ready")
            meter.roles["workers"] = lambda: [c.process.pid for c in children]
            meter.start()
            started = time.perf_counter()
            for c in children:
                assert c.process.stdin is not None
                await c.process.stdin.send_all(b"go\n")
            if args.py_spy:
                py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                for n, c in enumerate(children):
                    profilers.append(await trio.lowlevel.open_process(
                        [py_spy, "record", "--pid", str(c.process.pid), "--rate", "200", "--format", "raw",
                         "--nonblocking", "--output", f"{args.py_spy}-{name}-{n}.txt"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            with trio.move_on_after(args.max_seconds):
                await all_done(storage, account_id, args.messages)
                elapsed = time.perf_counter() - started
                meter.stop()
            for p in profilers:  # py-spy writes its output on SIGINT
                p.send_signal(signal.SIGINT)
            for p in profilers:
                with trio.move_on_after(10):
                    await p.wait()
            for c in children:
                assert c.process.stdin is not None
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await c.process.stdin.send_all(b"stop\n")
            with trio.move_on_after(CHILD_STOP_TIMEOUT):
                for c in children:
                    await c.process.wait()
            for c in children:  # the drains end at EOF: a child that did not exit is killed now
                await stop_process(c.process, grace=1)
    finally:
        for process in [*profilers, *(c.process for c in children)]:
            await stop_process(process, grace=1)
    return elapsed, [c.said.get("stopped", {"pid": c.process.pid, "exit": c.process.returncode}) for c in children]


async def main(args: argparse.Namespace) -> list[dict[str, object]]:
    """Start the database and the sink once, then run each round on them (a fresh account each)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    rounds = [int(n) for n in args.processes.split(",")] * args.repeat
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            url = server.get_uri()
            await trio.to_thread.run_sync(migrations.apply, url)
            async with contextlib.AsyncExitStack() as stack:
                storage = await stack.enter_async_context(open_storage(url, min_size=2, max_size=args.pool_size))
                nursery = await stack.enter_async_context(trio.open_nursery())
                counter, sessions = [0], [0]
                roles: dict[str, Any] = {
                    "bench (this process)": lambda: [os.getpid()],
                    "postgres": lambda: [server.get_pid(), *children_of(server.get_pid())],
                }
                if args.sink == "external":
                    port, sink_used, sink_pid = await stack.enter_async_context(external_sink(args))
                    roles["sink"] = lambda: [sink_pid]
                else:
                    listeners = await nursery.start(functools.partial(
                        trio.serve_tcp, sink_handler(args, counter, sessions), 0, host="127.0.0.1"))
                    port = listeners[0].socket.getsockname()[1]
                    sink_used = "in-process trio sink"
                print(f"sink: {sink_used}", file=sys.stderr, flush=True)
                for n, processes in enumerate(rounds):
                    meter = CpuMeter()
                    meter.roles.update(roles)
                    before = counter[0], sessions[0]
                    result = await run_round(args, url, storage, port, processes, meter, f"r{n}")
                    result = {"round": n, "provider": args.provider, "sink": sink_used, **result}
                    if args.sink == "inprocess":
                        result["requests_at_sink"] = counter[0] - before[0]
                        if args.provider == "smtp":
                            result["smtp_sessions"] = sessions[0] - before[1]
                    print(json.dumps(result), flush=True)
                    results.append(result)
                nursery.cancel_scope.cancel()
        finally:
            server.cleanup()
    return results


async def run_round(
    args: argparse.Namespace, url: str, storage: Any, port: int, processes: int, meter: CpuMeter, name: str
) -> dict[str, object]:
    """Queue ``--messages`` for a new account, deliver them with ``processes`` processes (0: in this one)."""
    from relay import composition, hashed_secrets

    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    account = await storage.accounts.create(
        name=f"bench-{name}", email=f"bench-{name}@example.com", password_hash="x",
        api_key_hash=key.hash, api_key_prefix=key.prefix, allowed_domains=("example.com",))
    config: dict[str, object] = {"api_key": "k", "base_url": f"http://127.0.0.1:{port}"}
    if args.provider == "smtp":
        config = {"host": "127.0.0.1", "port": port, "tls": "none"}
    if args.provider == "mailgun":
        config["domain"] = "mg.example.com"
    provider = await storage.providers.create(
        account_id=account.id, name="sink", type=models.ProviderType(args.provider), config=config)
    await storage.accounts.update(account.id, default_provider_id=provider.id)
    rcpt = tuple(f"r{i}@example.net" for i in range(args.recipients))
    for start in range(0, args.messages, 500):
        await storage.messages.enqueue_many([
            models.NewMessage(account_id=account.id, mail_from="bench@example.com",
                              rcpt_to=rcpt, raw=make_body(n, args.size))
            for n in range(start, min(start + 500, args.messages))
        ])
    if processes:
        elapsed, per_process = await run_processes(args, processes, url, storage, account.id, meter, name)
    else:
        runtime = composition.Runtime(config=Config(worker=worker_config(args)), database_url=url, storage=storage)
        elapsed, per_process = await run_in_process(args, runtime, account.id, meter)
    counts = await storage.messages.count_by_status(account_id=account.id)
    seconds = args.max_seconds if elapsed is None else elapsed
    sent = counts[models.MessageStatus.SENT]
    return {
        **({"processes": processes, "per_process": per_process} if processes else {"workers": args.workers}),
        "messages": args.messages, "size": args.size, "recipients": args.recipients, "batch": args.batch,
        "concurrency": args.concurrency, "sent": sent, "failed": counts[models.MessageStatus.FAILED],
        **({"smtp_data": args.smtp_data} if args.provider == "smtp" else {}),
        "seconds": round(seconds, 2), "messages_per_second": round(sent / seconds, 1),
        "cpu_seconds": meter.spent, "timed_out": elapsed is None,
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4000, help="bytes per message")
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--provider", choices=("mailgun", "sendgrid", "smtp"), default="mailgun")
    parser.add_argument("--smtp-data", action="store_true", help="smtp sink: no CHUNKING, so DATA is used")
    parser.add_argument("--sink", choices=("inprocess", "external"), default="inprocess",
                        help="run the upstream sink in this process or in its own")
    parser.add_argument("--sink-program", choices=("auto", "smtp-sink", "python"), default="auto",
                        help="external sink: Postfix's smtp-sink (smtp only; auto = when installed) or ours")
    parser.add_argument("--workers", type=int, default=1, help="workers in this process")
    parser.add_argument("--processes", default="0", metavar="N[,N...]",
                        help="worker processes instead of --workers; a list runs one round each, in that order, "
                             "on the same database and sink (0: --workers in this process)")
    parser.add_argument("--repeat", type=int, default=1, help="run the rounds of --processes this many times")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool-size", type=int, default=10, help="database pool size of each process")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--py-spy", metavar="PREFIX",
                        help="--processes: sample each child with py-spy into PREFIX-r<round>-<n>.txt")
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    if arguments.serve_sink:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(serve_sink, arguments)
    elif arguments.child:
        host.run(child, arguments)
    else:
        host.run(main, arguments)  # one JSON line per round
