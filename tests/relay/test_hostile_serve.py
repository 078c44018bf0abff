"""The hardening issue's "done when", as an attacker would try it: a real `relay serve`
fed hostile bytes over raw sockets stays up, and a well-behaved client is served
throughout — SMTP submission through to the queue, and the API."""

from __future__ import annotations

import smtplib
import socket
import ssl
from pathlib import Path

import httpx
import trio

from .test_cli import TIMEOUT, _env, start_relay, wait_until_serving

HOSTILE = [
    # The two single lines that used to end the whole process (found by fuzzing).
    b"EHLO x\r\nMAIL FROM:<a@[127.0.0\x13.1]>\r\n",
    b"EHLO x\r\nMAIL FROM:<a@a.example> SMTPUTF8" + b"X" * 480 + b"\r\n",
    # Control characters, NUL, bare LF, invalid UTF-8, an over-long line, HTTP.
    b"EHLO \x00\x01\x7f\r\nHELO a\nb\r\n\xff\xfe\r\n" + b"A" * 100_000 + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    # AUTH before TLS, garbage base64, a DATA with no transaction, pipelined junk.
    b"EHLO x\r\nAUTH PLAIN !!!\r\nDATA\r\nRCPT TO:<>\r\nBDAT 99999999999999999999 LAST\r\n",
]


def _hostile(port: int, data: bytes) -> bytes:
    """Send ``data``, read what comes back until the relay closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        got = sock.recv(4096)
        sock.sendall(data)
        sock.settimeout(2)
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return got


async def test_relay_serve_survives_hostile_input_and_serves_others(database_url: str, tmp_path: Path) -> None:
    env = _env(database_url, tmp_path)
    async with trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "serve", env)
        try:
            with trio.fail_after(TIMEOUT):
                serving = await wait_until_serving(reader)
                operator_key, smtp_port, api_url = serving.operator_key, serving.smtp_port, serving.api_url
                nursery.start_soon(reader.rest)
                async with httpx.AsyncClient(base_url=f"{api_url}/api/v1") as api:
                    created = await api.post(
                        "/accounts", headers={"Authorization": f"Bearer {operator_key}"},
                        json={"name": "App", "email": "app@app.example", "password": "a good long password",
                              "allowed_domains": ["app.example"]},
                    )
                    assert created.status_code == 201, created.text

                    def submit() -> dict[str, tuple[int, bytes]]:
                        context = ssl.create_default_context()
                        context.check_hostname = False
                        context.verify_mode = ssl.CERT_NONE  # the relay's self-signed pair
                        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                            client.starttls(context=context)
                            client.login("app@app.example", "a good long password")
                            return client.sendmail(
                                "app@app.example", ["friend@example.net"],
                                b"From: app@app.example\r\nSubject: hi\r\n\r\nstill here\r\n",
                            )

                    for data in HOSTILE:
                        answer = await trio.to_thread.run_sync(_hostile, smtp_port, data)
                        assert answer.startswith(b"220 "), answer
                        assert b"421 4.3.0" not in answer, (data[:60], answer)  # no internal fault
                        assert process.returncode is None, "\n".join(reader.seen)
                        assert await trio.to_thread.run_sync(submit) == {}
                        health = await api.get(f"{api_url}/healthz", timeout=10)
                        assert health.status_code == 200, health.text

                    listed = await api.get("/messages", headers={"Authorization": f"Bearer {operator_key}"})
                    assert listed.status_code == 200 and len(listed.json()["items"]) == len(HOSTILE)
                    assert not any("Traceback" in line for line in reader.seen), "\n".join(reader.seen)
        finally:
            process.terminate()
