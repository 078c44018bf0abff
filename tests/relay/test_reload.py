"""Live reload (SIGHUP through ``relay reload``) of a running ``relay smtp``, as an
operator does it: edit the file, run ``relay reload``, drop nothing.

Three sessions stay open across the reload and keep sending; the reload lowers
``smtp.max_connections_per_ip`` to what is open and rotates the certificate; a new
connection is then refused, and once one session ends, the next one is offered the
new certificate. A broken file is refused and the running configuration stays.
"""

from __future__ import annotations

import json
import signal
import smtplib
import ssl
from pathlib import Path

import trio
import trustme

from .test_cli import PASSWORD, TIMEOUT, _env, relay_async, start_relay

SENDER = "app@app.example"
RAW = b"From: app@app.example\r\nTo: friend@example.net\r\nSubject: hi\r\n\r\nHello\r\n"


def write_config(path: Path, cert: tuple[Path, Path], per_ip: int) -> None:
    path.write_text(
        "[smtp]\n"
        f"max_connections_per_ip = {per_ip}\n"
        "[tls]\n"
        f'cert_file = "{cert[0]}"\n'
        f'key_file = "{cert[1]}"\n'
    )


def issue(ca: trustme.CA, directory: Path, name: str) -> tuple[Path, Path]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def open_session(port: int, context: ssl.SSLContext) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.starttls(context=context)
    client.login(SENDER, PASSWORD)
    return client


def send(client: smtplib.SMTP) -> None:
    client.mail(SENDER)
    client.rcpt("friend@example.net")
    code, text = client.data(RAW)
    assert code == 250, text


def greeting_code(port: int) -> int:
    client = smtplib.SMTP(timeout=30)
    try:
        code, _ = client.connect("127.0.0.1", port)
        return code
    except smtplib.SMTPConnectError as exc:
        return exc.smtp_code
    finally:
        client.close()


async def test_reload_changes_a_limit_and_rotates_the_certificate_dropping_nothing(
    database_url: str, tmp_path: Path
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    config = tmp_path / "relay.toml"
    write_config(config, issue(old_ca, tmp_path, "old"), per_ip=50)
    env = _env(database_url, tmp_path)
    result = await relay_async(
        env, "-c", str(config), "accounts", "create", "--name", "App", "--email", SENDER,
        "--allowed-domain", "app.example", "--password-stdin", stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    async with trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "smtp", env, options=("-c", str(config)))
        try:
            with trio.fail_after(TIMEOUT):
                line = await reader.until(lambda line: '"smtp listening"' in line, "smtp listening")
                port = json.loads(line)["ports"][0]
                sessions = [
                    await trio.to_thread.run_sync(open_session, port, trusting(old_ca))
                    for _ in range(3)
                ]
                for client in sessions:
                    await trio.to_thread.run_sync(send, client)

                write_config(config, issue(new_ca, tmp_path, "new"), per_ip=3)
                told = await relay_async(env, "-c", str(config), "reload", "smtp")
                assert told.returncode == 0, told.stderr
                await reader.until(lambda line: '"configuration reloaded"' in line, "the reload")

                # The lower limit holds for new connections; the open sessions go on.
                assert await trio.to_thread.run_sync(greeting_code, port) == 421
                for client in sessions:
                    await trio.to_thread.run_sync(send, client)
                await trio.to_thread.run_sync(sessions.pop().quit)
                # New handshakes present the new certificate.
                fresh = await trio.to_thread.run_sync(open_session, port, trusting(new_ca))
                await trio.to_thread.run_sync(send, fresh)
                sessions.append(fresh)

                # A broken file: `relay reload` says so and signals nobody; a SIGHUP
                # anyway is refused in one line and the running configuration stays.
                config.write_text("[smtp]\nmax_connections_per_ip = -1\n")
                told = await relay_async(env, "-c", str(config), "reload")
                assert told.returncode == 2 and b"max_connections_per_ip" in told.stderr
                process.send_signal(signal.SIGHUP)
                await reader.until(
                    lambda line: '"configuration not reloaded; the running one stays"' in line,
                    "the refusal",
                )
                for client in sessions:
                    await trio.to_thread.run_sync(send, client)
                    await trio.to_thread.run_sync(client.quit)
        finally:
            process.terminate()
            nursery.start_soon(reader.rest)
        with trio.fail_after(TIMEOUT):
            assert await process.wait() == 0, "\n".join(reader.seen)
    assert not (tmp_path / "relay-smtp.pid").exists()

