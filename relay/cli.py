"""The ``relay`` command.

Every failure the user can fix (bad configuration, unreachable database, duplicate
email) ends with one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import trio

from . import composition, hashed_secrets, models, networks, reload, supervisor
from . import config as config_mod
from . import logging as relay_logging
from .runtime import open_database, open_runtime
from .smtp.tls import TlsConfigError
from .storage import (
    Conflict,
    InvalidReference,
    NetworkOverlap,
    Storage,
    StorageError,
    TooManyCredentials,
    host,
    migrations,
)

log = relay_logging.get_logger("relay.cli")

#: Seconds between a supervised process's checks that its supervisor is still alive.
PARENT_CHECK_INTERVAL = 1.0

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


class CommandError(Exception):
    """A failure to report in one line."""


#: What ``add_subparsers`` returns (argparse names no public type for it).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="SMTP submission relay with an admin HTTP API."
    )
    parser.add_argument(
        "-c", "--config", type=Path, default=None,
        help="TOML configuration file (default: conf/relay.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_service_commands(sub)
    sub.add_parser("config", help="print the effective configuration, secrets redacted")
    _add_migrate_command(sub)
    admin_key = sub.add_parser("admin-key", help="operator API keys")
    admin_sub = admin_key.add_subparsers(dest="action", required=True, metavar="ACTION")
    create_key = admin_sub.add_parser("create", help="create an operator key, print it once")
    create_key.add_argument("--name", default="", help="a label for the key")
    _add_accounts_command(sub)
    return parser


def _add_service_commands(sub: Subparsers) -> None:
    """The commands that run services (serve, smtp, api, worker) and reload them."""
    sub.add_parser(
        "serve",
        help="run every service (embedded database unless database.url is set); "
        "smtp.processes / api.processes > 1 run those services as several processes",
    )
    smtp = sub.add_parser("smtp", help="run only the SMTP submission service")
    api = sub.add_parser("api", help="run only the admin HTTP API")
    for command in (smtp, api):
        # Set by relay.supervisor on the processes it starts: share the ports, start
        # no children of its own.
        command.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("worker", help="run only the delivery worker (any number may share a database)")
    reload_command = sub.add_parser(
        "reload",
        help="make running relay processes re-read the configuration (SIGHUP via their pid files)",
    )
    reload_command.add_argument(
        "service", nargs="?", choices=("serve", *composition.SERVICES),
        help="only this command's process (default: every one found)",
    )


def _add_migrate_command(sub: Subparsers) -> None:
    migrate = sub.add_parser("migrate", help="apply, roll back or list schema migrations")
    migrate_sub = migrate.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate_sub.add_parser("up", help="apply every pending migration")
    down = migrate_sub.add_parser("down", help="roll back the newest migration(s)")
    down.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    migrate_sub.add_parser("status", help="list migrations and whether each is applied")


def _add_accounts_command(sub: Subparsers) -> None:
    """``accounts create`` and ``accounts ip-credentials add|list|remove``."""
    accounts = sub.add_parser("accounts", help="tenant accounts (bootstrap without the API)")
    accounts_sub = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    create_account = accounts_sub.add_parser(
        "create", help="create an account; prints its id and API key once"
    )
    create_account.add_argument("--name", required=True)
    create_account.add_argument("--email", required=True, help="the SMTP login")
    create_account.add_argument(
        "--allowed-domain", action="append", default=[], dest="allowed_domains",
        help="a sender domain this account may use (repeat; *.example.com for subdomains)",
    )
    create_account.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from standard input instead of prompting",
    )

    ip_credentials = accounts_sub.add_parser(
        "ip-credentials",
        help="networks whose clients submit over SMTP as the account without AUTH",
    )
    ip_sub = ip_credentials.add_subparsers(dest="ip_action", required=True, metavar="ACTION")
    ip_add = ip_sub.add_parser("add", help="add a network (CIDR); prints the credential")
    ip_add.add_argument("account", help="the account's id or login email")
    ip_add.add_argument("network", help="e.g. 192.0.2.0/24 or 2001:db8::/48")
    ip_add.add_argument("--description", default="", help="what the network is, for people")
    ip_list = ip_sub.add_parser("list", help="the account's networks, one JSON object a line")
    ip_list.add_argument("account", help="the account's id or login email")
    ip_remove = ip_sub.add_parser("remove", help="delete a credential by its id")
    ip_remove.add_argument("account", help="the account's id or login email")
    ip_remove.add_argument("credential_id", help="the id that add or list printed")


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandError("passwords do not match")
    if not password:
        raise CommandError("the password must not be empty")
    return password


async def _migrate(config: config_mod.Config, args: argparse.Namespace) -> None:
    async with open_database(config, migrate=False) as url:
        if args.action == "up":
            applied = await trio.to_thread.run_sync(migrations.apply, url)
            print("applied: " + (", ".join(applied) if applied else "nothing to apply"))
        elif args.action == "down":
            if args.steps < 1:
                raise CommandError("--steps must be 1 or more")
            undone = await trio.to_thread.run_sync(migrations.rollback, url, args.steps)
            print("rolled back: " + (", ".join(undone) if undone else "nothing to roll back"))
        else:
            for item in await trio.to_thread.run_sync(migrations.status, url):
                print(f"{'applied' if item.applied else 'pending':8} {item.id}")


async def _admin_key_create(config: config_mod.Config, args: argparse.Namespace) -> None:
    async with open_runtime(config) as runtime:
        key = hashed_secrets.new_key(hashed_secrets.OPERATOR_KEY_PREFIX)
        await runtime.storage.admin_keys.create(
            name=args.name, key_hash=key.hash, key_prefix=key.prefix
        )
    print(key.secret)
    print("Store this operator key now: it is not shown again.", file=sys.stderr)


async def _accounts_create(
    config: config_mod.Config, args: argparse.Namespace, password: str
) -> None:
    try:
        password_hash = await hashed_secrets.hash_password_async(password)
    except hashed_secrets.PasswordTooLong as exc:
        raise CommandError(str(exc)) from None
    key = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    async with open_runtime(config) as runtime:
        try:
            account = await runtime.storage.accounts.create(
                name=args.name,
                email=args.email,
                password_hash=password_hash,
                api_key_hash=key.hash,
                api_key_prefix=key.prefix,
                allowed_domains=[d.lower() for d in args.allowed_domains],
            )
        except Conflict:
            raise CommandError(f"an account with email {args.email!r} already exists") from None
    print(json.dumps({"id": str(account.id), "email": account.email, "api_key": key.secret}))
    print("Store this API key now: it is not shown again.", file=sys.stderr)


async def _find_account(storage: Storage, text: str) -> models.Account:
    """The account named by its id or login. Raises: CommandError when there is none."""
    try:
        account = await storage.accounts.get(uuid.UUID(text))
    except ValueError:
        account = await storage.accounts.get_by_email(text)
    if account is None:
        raise CommandError(f"no account with id or email {text!r}")
    return account


def _credential_json(credential: models.IpCredential) -> str:
    return json.dumps({
        "id": str(credential.id),
        "account_id": str(credential.account_id),
        "network": str(credential.network),
        "description": credential.description,
        "created_at": credential.created_at.isoformat(),
    })


async def _ip_credentials(config: config_mod.Config, args: argparse.Namespace) -> None:
    """``relay accounts ip-credentials add|list|remove``: an operator's tool, so an
    overlap names the other account's network and id (the API hides it from tenants)."""
    network = _new_network(args) if args.ip_action == "add" else None
    async with open_runtime(config) as runtime:
        storage = runtime.storage
        account = await _find_account(storage, args.account)
        if args.ip_action == "list":
            for credential in await storage.ip_credentials.list(account_id=account.id):
                print(_credential_json(credential))
        elif args.ip_action == "remove":
            await _remove_ip_credential(storage, account, args.credential_id)
        else:
            assert network is not None
            print(_credential_json(await _add_ip_credential(storage, account, network, args)))


def _new_network(args: argparse.Namespace) -> networks.Network:
    """``add``'s network and description, checked before the database is opened."""
    try:
        network = networks.credential_network(args.network)
    except networks.InvalidNetwork as exc:
        raise CommandError(f"network: {exc}") from None
    if len(args.description) > 200:
        raise CommandError("--description: at most 200 characters")
    return network


async def _remove_ip_credential(storage: Storage, account: models.Account, given: str) -> None:
    try:
        credential_id = uuid.UUID(given)
    except ValueError:
        raise CommandError(f"{given!r} is not a credential id") from None
    if not await storage.ip_credentials.delete(credential_id, account_id=account.id):
        raise CommandError(
            f"account {account.email} has no IP credential {credential_id};"
            " `relay accounts ip-credentials list` shows its ids"
        )


async def _add_ip_credential(
    storage: Storage, account: models.Account, network: networks.Network, args: argparse.Namespace
) -> models.IpCredential:
    """The new credential; each refusal in one line, an overlap naming the network held."""
    try:
        return await storage.ip_credentials.create(
            account_id=account.id, network=network, description=args.description,
            limit=networks.MAX_PER_ACCOUNT,
        )
    except NetworkOverlap as exc:
        held = exc.existing
        owner = "" if held is None else (
            f" {held.network} (id {held.id}) of account {held.account_id}"
        )
        raise CommandError(
            f"network: {network} overlaps IP credential{owner}; networks may not"
            " overlap, whichever account holds them"
        ) from None
    except TooManyCredentials as exc:
        raise CommandError(f"{exc}; remove one first") from None
    except InvalidReference:
        raise CommandError(f"account {args.account!r} was deleted meanwhile") from None


def _announce_operator_key(secret: str) -> None:
    print(
        "No operator key existed, so one was created. Store it now; it is not shown again:\n"
        f"    {secret}\n"
        "It signs in to the API (Authorization: Bearer) and to the web console (/console/).",
        file=sys.stderr,
        flush=True,
    )


async def _serve(
    config: config_mod.Config, services: tuple[str, ...], config_path: Path | None
) -> None:
    await composition.serve(
        config, services=services, announce=_announce_operator_key, config_path=config_path
    )


async def _serve_child(
    config: config_mod.Config, services: tuple[str, ...], config_path: Path | None
) -> None:
    """One of ``relay.supervisor``'s processes: share the ports; drain and stop when
    told (SIGTERM) or when the supervisor is gone (this process was re-parented)."""
    parent = os.getppid()
    async with trio.open_nursery() as nursery:
        started = await nursery.start(
            functools.partial(
                composition.serve, config, services=services, reuse_port=True, config_path=config_path
            )
        )
        while not started.shutdown.is_set():
            if os.getppid() != parent:
                log.warning("supervisor gone; shutting down", supervisor_pid=parent)
                started.shutdown.set()
            with trio.move_on_after(PARENT_CHECK_INTERVAL):
                await started.shutdown.wait()


async def _serve_supervised(
    config: config_mod.Config, services: tuple[str, ...], config_path: Path | None
) -> None:
    await supervisor.serve_supervised(
        config, services, config_path=config_path, announce=_announce_operator_key
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"relay: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    relay_logging.configure(config.logging, stream=sys.stderr)

    if args.command == "config":
        _print_config(config_mod.redacted(config))
        return 0
    try:
        if args.command == "serve" or args.command in composition.SERVICES:
            services = composition.SERVICES if args.command == "serve" else (args.command,)
            if getattr(args, "supervised", False):
                host.run(_serve_child, config, services, args.config)
            elif supervisor.supervised_services(config, services):
                supervisor.ensure_shared_metrics(argv)  # may re-execute this command
                with reload.PidFile(config, args.command):
                    host.run(_serve_supervised, config, services, args.config)
            else:
                with reload.PidFile(config, args.command):
                    host.run(_serve, config, services, args.config)
        elif args.command == "reload":
            wanted = (args.service,) if args.service else (*composition.SERVICES, "serve")
            if not reload.signal_running(config, wanted):
                return EXIT_RUNTIME
        elif args.command == "migrate":
            host.run(_migrate, config, args)
        elif args.command == "admin-key":
            host.run(_admin_key_create, config, args)
        elif args.command == "accounts" and args.action == "ip-credentials":
            host.run(_ip_credentials, config, args)
        elif args.command == "accounts":
            password = _read_password(args.password_stdin)
            host.run(_accounts_create, config, args, password)
    except (CommandError, StorageError, TlsConfigError, FileNotFoundError, OSError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130
    return 0


def _print_config(data: dict[str, Any]) -> None:
    """TOML-shaped output, so it can be pasted back into conf/relay.toml."""
    for section, values in data.items():
        print(f"[{section}]")
        for key, value in values.items():
            print(f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
        print()
