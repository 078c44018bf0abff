"""The container's HEALTHCHECK: is the relay service in this container answering?

Strategy: there is no ``relay health`` subcommand (and this file must not need one),
so this stdlib-only script — no relay import, so it starts in tens of milliseconds —
asks the service the way a client would. Which service runs is read from PID 1's
command line (``relay -c FILE COMMAND``), or given as the first argument:

- ``api``: ``GET /healthz`` on ``api.listen`` must answer 200 (liveness only; the
  database is ``/readyz``'s business, and a database outage must not mark every API
  container unhealthy).
- ``smtp``: a connection to ``smtp.listen`` must be greeted with ``220`` (then QUIT).
  It goes through relay's connection limits like any client's (loopback is in the
  default ``smtp.trusted_networks``, exempt from the connection rate).
  A ``421`` (too many connections, shutting down) counts as unhealthy.
- ``serve``: both of the above.
- ``worker`` (and one-shot commands such as ``migrate``): healthy while running. The
  worker has no listener to ask; when it fails it exits, and the restart policy acts.

The listen addresses come from the configuration file given to PID 1 with ``-c`` and
from ``RELAY_API__LISTEN`` / ``RELAY_SMTP__LISTEN``, which win as they do in relay.
Exit status 0 is healthy, 1 unhealthy (with the reason on stderr).
"""

from __future__ import annotations

import os
import socket
import sys
import tomllib
import urllib.request
from pathlib import Path

TIMEOUT = 4.0
COMMANDS = ("serve", "smtp", "api", "worker", "migrate")
DEFAULT_LISTEN = {"api": "127.0.0.1:8080", "smtp": "0.0.0.0:587"}


def pid1_arguments() -> list[str]:
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def command_of(argv: list[str]) -> tuple[str, str | None]:
    """The relay subcommand and the ``-c`` file in a command line."""
    config = None
    for index, word in enumerate(argv):
        if word in ("-c", "--config") and index + 1 < len(argv):
            config = argv[index + 1]
        elif word.startswith("--config="):
            config = word.partition("=")[2]
        elif word in COMMANDS:
            return word, config
    return "", config


def listen_address(section: str, config_file: str | None) -> tuple[str, int]:
    value = os.environ.get(f"RELAY_{section.upper()}__LISTEN", "")
    if not value and config_file:
        try:
            with open(config_file, "rb") as f:
                value = tomllib.load(f).get(section, {}).get("listen", "")
        except (OSError, tomllib.TOMLDecodeError):
            value = ""
    host, _, port = (value or DEFAULT_LISTEN[section]).rpartition(":")
    host = host.strip("[]")
    # A wildcard listener is reached on loopback.
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return host, int(port)


def check_api(config_file: str | None) -> str | None:
    host, port = listen_address("api", config_file)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with urllib.request.urlopen(f"http://{netloc}/healthz", timeout=TIMEOUT) as reply:
            status = reply.status
    except OSError as exc:  # URLError and HTTPError are OSErrors
        return f"api {netloc}: {exc}"
    return None if status == 200 else f"api {netloc}: /healthz answered {status}"


def check_smtp(config_file: str | None) -> str | None:
    host, port = listen_address("smtp", config_file)
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            replies = sock.makefile("rb")
            greeting = replies.readline(512)
            if greeting.startswith(b"220"):
                sock.sendall(b"QUIT\r\n")
                replies.readline(512)  # the 221, so the session ends as a client's would
                return None
    except OSError as exc:
        return f"smtp {host}:{port}: {exc}"
    return f"smtp {host}:{port}: greeted with {greeting[:80]!r}"


def main(argv: list[str]) -> int:
    command, config_file = command_of(pid1_arguments())
    if len(argv) > 1:
        command = argv[1]
    checks = {"api": [check_api], "smtp": [check_smtp], "serve": [check_api, check_smtp]}
    problems = [p for check in checks.get(command, []) if (p := check(config_file))]
    for problem in problems:
        print(f"relay-healthcheck: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
