"""relay, aiosmtpd+asyncpg and Postfix side by side: messages/s on the SMTP accept path.

One command starts, on 127.0.0.1 only and in one temporary directory:

  relay     `relay smtp` (plaintext; AUTH PLAIN allowed without TLS for this bench),
            storing each message in PostgreSQL before its 250;
  aiosmtpd  bench/aiosmtpd_pg.py: aiosmtpd + its own asyncpg pool, one INSERT and one
            commit per message before the 250 (the usual asyncio way to do the same);
  postfix   when installed and run as root: a private instance (its own main.cf and
            master.cf, queue and data directories under the temporary directory) whose
            smtpd puts every message on the hold queue, so nothing is delivered; the
            250 comes after cleanup has fsync'ed the queue file;

all three on the same embedded PostgreSQL (pgserver) where they use one. Then, for
each scenario, it runs the generator against each server in turn (the order rotates
from one scenario to the next, so noise hits them alike):

  N sessions x many   --sessions (default 20 and 200) connections at once sending
                      --many messages in all, over as many messages per connection
                      as that makes;
  N sessions x 1      the same sessions, one message per connection, --single in all.

Generators: Postfix's `smtp-source` (default when it is installed) or ours,
bench/smtp_load.py (`--generator ours`). smtp-source cannot AUTH: the relay accepts it
only through an IP credential (see relay_without_auth); when the relay offers none,
its rows fall back to our generator, with AUTH, and the output says so. Our
generator authenticates to the relay and not to the others.

Prints a table of messages/s per server and scenario and the ratios relay/aiosmtpd
and relay/postfix, writes it to --out (Markdown) and draws it to --png (matplotlib).
Everything is bounded: each run by --run-seconds, the whole by --max-seconds (runs
that would start after it are skipped and shown as such).

    python bench/compare.py
    python bench/compare.py --generator ours --sessions 20 200 --many 4000 --single 1000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable

SENDER = "bench@bench.test"
RECIPIENT = "sink@example.net"
PASSWORD = "bench-password"
SERVERS = ("relay", "aiosmtpd", "postfix")
LABELS = {"relay": "relay", "aiosmtpd": "aiosmtpd+asyncpg", "postfix": "Postfix"}
POSTFIX_DAEMONS = Path("/usr/lib/postfix/sbin")


# ---------------------------------------------------------------- small helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, log: Path | None,
              seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start listening on {port}" + (f"; see {log}" if log else ""))


def start(log: Path, command: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start a server with its stderr in ``log`` (the child keeps the file open)."""
    with open(log, "wb") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                **kwargs)  # type: ignore[call-overload]


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop one process we started, by its pid: SIGTERM, then SIGKILL after 30 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Progress:
    """One status line on stderr, rewritten in place."""

    def __init__(self) -> None:
        self.width = 0
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, text: str) -> None:
        if not self.tty:  # a log file gets a line every 5 s, not a stream of \r
            if time.monotonic() - self.last < 5:
                return
            self.last = time.monotonic()
            print(text, file=sys.stderr, flush=True)
            return
        pad = max(0, self.width - len(text))
        print("\r" + text + " " * pad, end="", file=sys.stderr, flush=True)
        self.width = len(text)

    def done(self, text: str) -> None:
        if self.tty:
            self.show(text)
            print(file=sys.stderr, flush=True)
            self.width = 0
        else:
            print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Scenario:
    sessions: int
    total: int
    per_connection: int  # 0 = as many as total / sessions (one connection per session)

    @property
    def label(self) -> str:
        if self.per_connection:
            return f"{self.sessions} sessions × 1 msg/conn"
        return f"{self.sessions} sessions × {self.total // self.sessions} msgs/conn"


@dataclass
class Server:
    name: str
    port: int
    generator: str  # "smtp-source" or "ours"
    auth: bool  # our generator authenticates (relay only)
    stored: Callable[[], int]
    reset: Callable[[], None]
    note: str = ""
    #: The server's process (its children included) whose CPU time is measured, if any.
    cpu_root: int | None = None


@dataclass
class Result:
    scenario: Scenario
    server: str
    generator: str
    sent: int = 0
    seconds: float = 0.0
    errors: int = 0
    stored: int = 0
    skipped: bool = False
    detail: list[str] = field(default_factory=list)
    #: Seconds of CPU during the run: "server", "PostgreSQL", "generator" (as measured).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- CPU time


def tree_cpu(root: int) -> float:
    """Seconds of CPU (user + system) used by ``root`` and every live descendant, plus
    what its reaped children used (cutime/cstime), read from /proc (Linux only)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(times.get(pid, 0.0) for pid in tree)


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (the generator, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- PostgreSQL


def query_one(url: str, sql: str) -> int:
    import psycopg2  # a relay dependency (yoyo's driver)

    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def table_count(url: str, table: str) -> int:
    return query_one(url, f"SELECT count(*) FROM {table}")


def truncate(url: str, table: str) -> None:
    query_one(url, f"TRUNCATE {table} CASCADE; SELECT 0")


# ---------------------------------------------------------------- relay


def relay_env(db_url: str, port: int, api_port: int, workdir: Path, sessions: int,
              processes: int = 1) -> dict[str, str]:
    return {
        **os.environ,
        # smtp.processes: 1 by default; N runs N processes on the one port (SO_REUSEPORT).
        "RELAY_SMTP__PROCESSES": str(processes),
        "RELAY_DATABASE__URL": db_url,
        "RELAY_DATABASE__POOL_MAX_SIZE": "10",
        "RELAY_SMTP__LISTEN": f"127.0.0.1:{port}",
        "RELAY_API__LISTEN": f"127.0.0.1:{api_port}",
        "RELAY_SMTP__MAX_CONNECTIONS": str(max(1000, sessions + 50)),
        "RELAY_SMTP__HOSTNAME": "relay.bench",
        "RELAY_TLS__SELF_SIGNED_DIR": str(workdir / "tls"),
        "RELAY_LOGGING__LEVEL": "warning",
        # Plaintext on loopback for every server: this compares the accept path, not TLS.
        "RELAY_SMTP__AUTH_REQUIRE_TLS": "false",
        # The generator is one address; the per-address cap is for hostile clients.
        "RELAY_SMTP__PER_IP_EXEMPT_NETWORKS": "127.0.0.0/8",
    }


def relay_without_auth(api_url: str, account_id: str, api_key: str) -> str:
    """Let a client that cannot AUTH (smtp-source) submit from 127.0.0.1 to the relay.

    Creates an IP credential for the bench account (``POST /api/v1/accounts/{id}/
    ip-credentials``, ``{"network": "127.0.0.0/8"}``, with the account's own key).
    Returns "" when the relay now accepts unauthenticated submissions from loopback,
    otherwise why not (the caller then drives the relay with our generator, with AUTH).
    IP credentials arrived in 164dba4; a relay from before answers 404 here. The one
    place to adjust if that API changes.
    """
    request = urllib.request.Request(
        f"{api_url}/api/v1/accounts/{account_id}/ip-credentials",
        data=json.dumps({"network": "127.0.0.0/8"}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            if 200 <= response.status < 300:
                return ""
            return f"POST ip-credentials answered {response.status}"
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):
            return f"relay has no IP credentials API yet (POST ip-credentials: {exc.code})"
        return f"POST ip-credentials answered {exc.code}: {exc.read()[:200]!r}"
    except OSError as exc:
        return f"the relay API did not answer: {exc}"


@contextlib.contextmanager
def run_relay(db_url: str, workdir: Path, sessions: int, want_no_auth: bool, processes: int = 1
              ) -> Iterator[tuple[int, str, int]]:
    """Migrate, create the bench account, start `relay smtp`; yield (port, why AUTH stays,
    the process's pid).

    ``why`` is "" when the relay was opened to unauthenticated loopback clients.
    """
    port, api_port = free_port(), free_port()
    env = relay_env(db_url, port, api_port, workdir, sessions, processes)
    relay = [PY, "-m", "relay"]
    subprocess.run([*relay, "migrate", "up"], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    created = subprocess.run(
        [*relay, "accounts", "create", "--name", "bench", "--email", SENDER,
         "--allowed-domain", "bench.test", "--password-stdin"],
        env=env, input=(PASSWORD + "\n").encode(), check=True, capture_output=True, cwd=ROOT,
    )
    account = json.loads(created.stdout)
    why = "not asked (our generator authenticates)"
    if want_no_auth:
        log = workdir / "relay-api.log"
        api = start(log, [*relay, "api"], env=env, cwd=ROOT)
        try:
            wait_port(api_port, api, "relay api", log)
            why = relay_without_auth(f"http://127.0.0.1:{api_port}", account["id"],
                                     account["api_key"])
        finally:
            stop(api)
    log = workdir / "relay.log"
    proc = start(log, [*relay, "smtp"], env=env, cwd=ROOT)
    try:
        wait_port(port, proc, "relay smtp", log)
        yield port, why, proc.pid
    finally:
        stop(proc)


# ---------------------------------------------------------------- aiosmtpd


@contextlib.contextmanager
def run_aiosmtpd(db_url: str, workdir: Path) -> Iterator[tuple[int, int]]:
    """Start bench/aiosmtpd_pg.py; yield (port, its pid)."""
    port = free_port()
    log = workdir / "aiosmtpd.log"
    proc = start(log, [PY, str(BENCH / "aiosmtpd_pg.py"), "--database-url", db_url,
                       "--port", str(port), "--pool-size", "10"])
    try:
        wait_port(port, proc, "aiosmtpd_pg.py", log)
        yield port, proc.pid
    finally:
        stop(proc)


# ---------------------------------------------------------------- Postfix


def postfix_missing() -> str:
    """Why a private Postfix cannot run here ("" when it can)."""
    if not shutil.which("postfix") or not (POSTFIX_DAEMONS / "smtpd").exists():
        return "Postfix is not installed"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master starts as root)"
    try:
        import pwd

        pwd.getpwnam("postfix")
    except KeyError:
        return "no 'postfix' user"
    return ""


POSTFIX_MAIN = """\
compatibility_level = 3.6
myhostname = postfix.bench
mydomain = bench
mydestination =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
queue_directory = {dir}/spool
data_directory = {dir}/data
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
syslog_name = postfix-bench
alias_maps =
alias_database =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
# Every message goes to the hold queue: accepted, stored, never delivered.
smtpd_end_of_data_restrictions = check_client_access static:HOLD
default_process_limit = {procs}
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
message_size_limit = 26214400
biff = no
"""

# chroot off everywhere (the default Debian master.cf chroots into the system spool).
POSTFIX_MASTER = """\
127.0.0.1:{port} inet n - n - {procs} smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def hold_count(directory: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(directory / "spool" / "hold"))


def hold_clear(directory: Path) -> None:
    subprocess.run(["postsuper", "-c", str(directory / "etc"), "-d", "ALL", "hold"],
                   check=False, capture_output=True)


def postfix_master(directory: Path) -> int | None:
    """The Postfix master's pid: its smtpd and cleanup processes are its children."""
    try:
        return int((directory / "spool" / "pid" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def run_postfix(workdir: Path, sessions: int) -> Iterator[tuple[int, Path]]:
    directory = workdir / "postfix"
    etc = directory / "etc"
    for sub in ("etc", "spool", "data"):
        (directory / sub).mkdir(parents=True)
    shutil.chown(directory / "data", "postfix", "postfix")
    # mail_owner must be able to reach its queue through every parent directory
    for path in (workdir, directory):
        path.chmod(0o755)
    port = free_port()
    procs = max(100, sessions + 50)
    (etc / "main.cf").write_text(POSTFIX_MAIN.format(dir=directory, procs=procs))
    (etc / "master.cf").write_text(POSTFIX_MASTER.format(port=port, procs=procs))
    started = subprocess.run(["postfix", "-c", str(etc), "start"], check=False, capture_output=True, text=True)
    try:
        if started.returncode != 0:
            log = (directory / "maillog").read_text() if (directory / "maillog").exists() else ""
            raise SystemExit(f"postfix start failed: {started.stderr.strip()}\n{log[-2000:]}")
        wait_port(port, None, "postfix smtpd", directory / "maillog")
        yield port, directory
    finally:
        subprocess.run(["postfix", "-c", str(etc), "stop"], check=False, capture_output=True)
        pid_file = directory / "spool" / "pid" / "master.pid"
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # master removes its pid file on the way out


# ---------------------------------------------------------------- generators


def smtp_source_command(server: Server, scenario: Scenario, size: int) -> list[str]:
    command = ["smtp-source", "-c", "-s", str(scenario.sessions), "-m", str(scenario.total),
               "-l", str(size), "-f", SENDER, "-t", RECIPIENT, "-M", "bench.test"]
    if not scenario.per_connection:
        command.append("-d")  # keep the connection for the next message
    return [*command, f"127.0.0.1:{server.port}"]


def ours_command(server: Server, scenario: Scenario, size: int, seconds: float) -> list[str]:
    command = [PY, str(BENCH / "smtp_load.py"), "send", "--port", str(server.port), "--no-tls",
               "--sessions", str(scenario.sessions), "--size", str(size),
               "--max-seconds", str(max(1, int(seconds)))]
    if scenario.per_connection:
        command += ["--messages", "1", "--connections", str(scenario.total)]
    else:
        command += ["--messages", str(scenario.total // scenario.sessions)]
    if server.auth:
        command += ["--user", SENDER, "--password", PASSWORD]
    return command


def run_one(server: Server, scenario: Scenario, size: int, seconds: float,
            status: Callable[[int], None], postgres: int | None = None) -> Result:
    """Run the generator once against ``server``; ``status`` gets the running count.
    CPU time of the server, of PostgreSQL (``postgres``: the postmaster's pid) and of
    the generator is measured over the run."""
    result = Result(scenario, server.name, server.generator)
    roots = {"server": server.cpu_root, "PostgreSQL": postgres}
    cpu_before = {k: tree_cpu(pid) for k, pid in roots.items() if pid is not None}
    generator_before = children_cpu()
    ours = server.generator == "ours"
    command = (ours_command(server, scenario, size, seconds) if ours
               else smtp_source_command(server, scenario, size))
    before = server.stored()
    counter = [0]
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    started = time.perf_counter()

    # smtp-source -c writes "1\r2\r…" on stdout; ours "\r  12/400 messages, …" on stderr
    pattern = re.compile(rb"(\d+)/\d+ messages" if ours else rb"(\d+)\r")

    def reader(stream: object, sink: list[bytes], counts: bool) -> None:
        pending = b""
        for chunk in iter(lambda: stream.read1(4096), b""):  # type: ignore[attr-defined]
            sink.append(chunk)
            if counts:
                pending = (pending + chunk)[-256:]
                numbers = pattern.findall(pending)
                if numbers:
                    counter[0] = int(numbers[-1])

    threads = [threading.Thread(target=reader, args=(proc.stdout, out_chunks, not ours)),
               threading.Thread(target=reader, args=(proc.stderr, err_chunks, ours))]
    for thread in threads:
        thread.start()
    deadline = started + seconds + (10 if ours else 0)  # ours stops itself at --max-seconds
    timed_out = False
    while True:
        status(counter[0])
        try:
            proc.wait(timeout=0.25)  # returns as soon as it exits: the timing stays exact
            break
        except subprocess.TimeoutExpired:
            if time.perf_counter() > deadline:
                timed_out = True
                proc.kill()
                proc.wait()
                break
    elapsed = time.perf_counter() - started
    result.cpu = {k: tree_cpu(roots[k]) - v for k, v in cpu_before.items()  # type: ignore[arg-type]
                  if roots[k] is not None}
    result.cpu["generator"] = children_cpu() - generator_before
    for thread in threads:
        thread.join()
    stdout, stderr = b"".join(out_chunks), b"".join(err_chunks).decode(errors="replace")

    if ours:
        try:
            report = json.loads(stdout)
            result.sent = int(report["messages"])
            result.seconds = float(report["seconds"])
            result.errors = int(report["errors"])
            result.detail += [str(e) for e in report["first_errors"]]
        except (ValueError, KeyError):
            result.errors += 1
            result.detail.append(f"generator failed: {stderr.strip()[-300:]}")
    else:
        result.sent = counter[0]
        result.seconds = elapsed
        if proc.returncode != 0 and not timed_out:
            result.errors += 1
            result.detail.append(f"smtp-source exit {proc.returncode}: {stderr.strip()[-300:]}")
        elif stderr.strip():
            result.detail.append(stderr.strip()[-300:])
    if timed_out:
        result.detail.append(f"stopped at --run-seconds ({seconds:.0f} s)")
    time.sleep(0.5)  # Postfix's cleanup may still be renaming the last queue files
    result.stored = server.stored() - before
    return result


# ---------------------------------------------------------------- report


def host_loop() -> str:
    """Which asyncio loop the relay and bench/aiosmtpd_pg.py run: both take it from
    ``relay.storage.host.new_host_loop`` (uvloop's when installed and ``RELAY_UVLOOP``
    is not 0, else asyncio's own)."""
    from relay.storage import host

    loop = host.new_host_loop()
    try:
        return f"{host.host_loop_name(loop)}'s"
    finally:
        loop.close()


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB"
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def fmt_rate(result: Result | None) -> str:
    if result is None:
        return "—"
    if result.skipped:
        return "skipped"
    text = f"{result.rate:,.0f}"
    if result.errors:
        text += f" ({result.errors} err)"
    return text


def ratio(a: Result | None, b: Result | None) -> str:
    if a is None or b is None or a.skipped or b.skipped or not b.rate:
        return "—"
    return f"{a.rate / b.rate:.2f}"


def render(results: list[Result], scenarios: list[Scenario], servers: list[str],
           generators: dict[str, str], notes: list[str], header: list[str]) -> str:
    cell = {(r.scenario, r.server): r for r in results}
    columns = [f"{LABELS[s]} msg/s ({generators[s]})" for s in servers]
    ratios = [f"relay/{s}" for s in servers if s != "relay" and "relay" in servers]
    lines = [*header, "",
             "| scenario | " + " | ".join(columns + ratios) + " |",
             "|---" * (1 + len(columns) + len(ratios)) + "|"]
    for scenario in scenarios:
        row = [fmt_rate(cell.get((scenario, s))) for s in servers]
        row += [ratio(cell.get((scenario, "relay")), cell.get((scenario, s)))
                for s in servers if s != "relay" and "relay" in servers]
        lines.append(f"| {scenario.label} | " + " | ".join(row) + " |")
    lines += cpu_table(results, scenarios, servers)
    checks = []
    for r in results:
        if r.skipped:
            continue
        mark = "" if r.stored == r.sent else f" — STORED {r.stored} ≠ ACCEPTED {r.sent}"
        checks.append(f"- {r.scenario.label}, {LABELS[r.server]}: {r.sent} accepted in "
                      f"{r.seconds:.2f} s, {r.stored} stored{mark}"
                      + ("; " + "; ".join(r.detail[:2]) if r.detail else ""))
    lines += ["", *[f"Note: {n}" for n in notes], "", "Runs:", *checks]
    return "\n".join(lines) + "\n"


def cpu_table(results: list[Result], scenarios: list[Scenario], servers: list[str]) -> list[str]:
    """Milliseconds of CPU per accepted message: the server's, PostgreSQL's, the
    generator's, and the rate all of it allows on this machine's cores (each core gives
    1,000 ms of CPU per second): how close each run came to what the machine can do."""
    cores = os.cpu_count() or 1
    cell = {(r.scenario, r.server): r for r in results}
    lines = ["", f"CPU per accepted message (ms; the bound is {cores} cores' worth of it):", "",
             "| scenario | server | server ms | PostgreSQL ms | generator ms | all ms | bound msg/s |",
             "|---|---|---|---|---|---|---|"]
    for scenario in scenarios:
        for name in servers:
            r = cell.get((scenario, name))
            if r is None or r.skipped or not r.sent or "server" not in r.cpu:
                continue
            per = {k: 1000 * v / r.sent for k, v in r.cpu.items()}
            total = sum(per.values())
            lines.append(
                f"| {scenario.label} | {LABELS[name]} | {per['server']:.2f} | "
                f"{per.get('PostgreSQL', 0):.2f} | {per['generator']:.2f} | {total:.2f} | "
                f"{1000 * cores / total:,.0f} |")
    return lines


def draw(results: list[Result], scenarios: list[Scenario], servers: list[str],
         generators: dict[str, str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cell = {(r.scenario, r.server): r for r in results}
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        rates = [cell[(s, server)].rate if (s, server) in cell and not cell[(s, server)].skipped
                 else 0.0 for s in scenarios]
        xs = [x + (i - (len(servers) - 1) / 2) * width for x in range(len(scenarios))]
        bars = ax.bar(xs, rates, width, label=f"{LABELS[server]} ({generators[server]})")
        ax.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], fontsize=8, padding=2)
    ax.set_xticks(range(len(scenarios)), [s.label.replace(" × ", "\n× ") for s in scenarios])
    ax.set_ylabel("messages/s (accepted = stored before the 250)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", choices=["auto", "smtp-source", "ours"], default="auto",
                        help="auto: smtp-source when installed, else ours")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--sessions", nargs="+", type=int, default=[20, 200],
                        help="concurrent sessions per scenario (default 20 200)")
    parser.add_argument("--many", type=int, default=4000,
                        help="messages per 'many per connection' run, split over the sessions")
    parser.add_argument("--single", type=int, default=1000,
                        help="messages (= connections) per 'one per connection' run")
    parser.add_argument("--size", type=int, default=2000, help="message size in bytes")
    parser.add_argument("--relay-processes", type=int, default=1, metavar="N",
                        help="relay's smtp.processes (default 1; 0 = one per core)")
    parser.add_argument("--run-seconds", type=float, default=60, help="cap on each run")
    parser.add_argument("--max-seconds", type=float, default=600,
                        help="cap on the whole; runs that would start later are skipped")
    parser.add_argument("--out", type=Path, default=BENCH / "compare-results.md")
    parser.add_argument("--png", type=Path, default=BENCH / "compare.png")
    args = parser.parse_args()
    began = time.monotonic()

    generator = args.generator
    if generator == "auto":
        generator = "smtp-source" if shutil.which("smtp-source") else "ours"
    elif generator == "smtp-source" and not shutil.which("smtp-source"):
        raise SystemExit("smtp-source is not installed (Postfix's tools); use --generator ours")
    servers = list(args.servers)
    notes: list[str] = []
    if "postfix" in servers and (why := postfix_missing()):
        servers.remove("postfix")
        notes.append(f"Postfix left out: {why}.")

    scenarios = [Scenario(n, max(args.many, n) // n * n, 0) for n in args.sessions]
    scenarios += [Scenario(n, max(args.single, n) // n * n, 1) for n in args.sessions]
    progress = Progress()

    with tempfile.TemporaryDirectory(prefix="relay-compare-") as tmp, \
            contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        import pgserver  # the same embedded PostgreSQL the relay uses

        progress.done("starting PostgreSQL and the servers …")
        database = pgserver.get_server(workdir / "pg", cleanup_mode="stop")
        stack.callback(database.cleanup)
        db_url = database.get_uri()
        targets: dict[str, Server] = {}
        if "relay" in servers:
            port, why, relay_pid = stack.enter_context(run_relay(
                db_url, workdir, max(args.sessions), want_no_auth=generator == "smtp-source",
                processes=args.relay_processes))
            if args.relay_processes != 1:
                notes.append(f"relay runs {args.relay_processes} SMTP processes on the one port "
                             "(smtp.processes, SO_REUSEPORT); the other servers as they come.")
            relay_gen = generator if not why else "ours"
            if generator == "smtp-source" and why:
                notes.append(f"relay driven by our generator with AUTH PLAIN, not smtp-source: "
                             f"{why}.")
            elif generator == "smtp-source":
                notes.append("smtp-source cannot AUTH: the relay accepts it through an IP "
                             "credential (127.0.0.0/8) on the bench account.")
            else:
                notes.append("our generator logs in (AUTH PLAIN) to the relay only: one more "
                             "round trip per connection, the password check cached.")
            targets["relay"] = Server(
                "relay", port, relay_gen, auth=relay_gen == "ours",
                stored=lambda: table_count(db_url, "messages"),
                reset=lambda: truncate(db_url, "messages"), cpu_root=relay_pid)
        if "aiosmtpd" in servers:
            port, aiosmtpd_pid = stack.enter_context(run_aiosmtpd(db_url, workdir))
            targets["aiosmtpd"] = Server(
                "aiosmtpd", port, generator, auth=False,
                stored=lambda: table_count(db_url, "bench_aiosmtpd_messages"),
                reset=lambda: truncate(db_url, "bench_aiosmtpd_messages"), cpu_root=aiosmtpd_pid)
        if "postfix" in servers:
            port, pdir = stack.enter_context(run_postfix(workdir, max(args.sessions)))
            targets["postfix"] = Server(
                "postfix", port, generator, auth=False,
                stored=lambda: hold_count(pdir), reset=lambda: hold_clear(pdir),
                cpu_root=postfix_master(pdir))

        results: list[Result] = []
        total_runs = len(scenarios) * len(servers)
        run_number = 0
        for index, scenario in enumerate(scenarios):
            for target in targets.values():
                target.reset()  # every server starts each scenario with an empty store
            order = servers[index % len(servers):] + servers[:index % len(servers)]
            for name in order:
                run_number += 1
                target = targets[name]
                left = args.max_seconds - (time.monotonic() - began)
                if left < 5:
                    results.append(Result(scenario, name, target.generator, skipped=True))
                    continue
                seconds = min(args.run_seconds, left)
                head = (f"[{run_number}/{total_runs}] {scenario.label} · {LABELS[name]} "
                        f"({target.generator})")
                t0 = time.monotonic()

                def status(count: int, head: str = head, t0: float = t0,
                           scenario: Scenario = scenario) -> None:
                    spent = time.monotonic() - t0
                    progress.show(f"{head} · {count:,}/{scenario.total:,} msgs · "
                                  f"{spent:.0f} s · total {time.monotonic() - began:.0f} s")

                result = run_one(target, scenario, args.size, seconds, status,
                                 postmaster_pid(workdir / "pg"))
                results.append(result)
                progress.done(f"{head} · {result.sent:,} msgs in {result.seconds:.1f} s = "
                              f"{result.rate:,.0f}/s" + (f", {result.errors} errors"
                                                         if result.errors else ""))

    generators = {name: t.generator for name, t in targets.items()}
    notes.append(f"asyncio loop of relay and aiosmtpd+asyncpg alike: {host_loop()}.")
    notes.append(f"{args.size}-byte messages, one recipient, plaintext on 127.0.0.1; "
                 "each server answers 250 only once the message is stored "
                 "(PostgreSQL commit, or Postfix's fsync'ed hold-queue file).")
    if "ours" in generators.values():
        notes.append("our generator's msg/s leaves out logging in (sessions × many); "
                     "smtp-source's is its wall time.")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python bench/compare.py " + " ".join(sys.argv[1:])
    header = [f"# SMTP side by side ({stamp})", "",
              f"Machine: {machine()}. Command: `{command.strip()}`.",
              ("All servers, PostgreSQL and the generator share the machine: read the "
               "figures as noisy (±15 % or worse).")]
    text = render(results, scenarios, servers, generators, notes, header)
    print(text)
    args.out.write_text(text)
    draw(results, scenarios, servers, generators, args.png,
         f"SMTP accept path, {args.size}-byte messages, plaintext loopback — {machine()}")
    print(f"wrote {args.out} and {args.png} in {time.monotonic() - began:.0f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
