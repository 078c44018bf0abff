"""The newcomer's path, as a person would walk it, with the real `relay` command:

`relay serve` → create an account and an SMTP provider through the API → submit a
message with smtplib over STARTTLS + AUTH → the worker hands it to an upstream SMTP
server (aiosmtpd) → `GET /api/v1/messages/{id}` shows it sent, with its attempt.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from pathlib import Path

import httpx
import trio
import trustme

from .test_cli import TIMEOUT, _env, start_relay, wait_until_serving
from .worker.upstream import aiosmtpd_upstream


async def test_serve_api_smtp_worker_upstream(database_url: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    env = _env(database_url, tmp_path, RELAY_WORKER__POLL_INTERVAL="0.2")
    async with aiosmtpd_upstream(ca, tls="starttls", auth=True) as upstream, trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "serve", env)
        try:
            with trio.fail_after(TIMEOUT):
                serving = await wait_until_serving(reader)
                operator_key, smtp_port, api_url = serving.operator_key, serving.smtp_port, serving.api_url
                nursery.start_soon(reader.rest)

                async with httpx.AsyncClient(base_url=f"{api_url}/api/v1") as api:
                    created = await api.post("/accounts", headers={"Authorization": f"Bearer {operator_key}"}, json={
                        "name": "Newcomer", "email": "new@app.example", "password": "a good long password",
                        "allowed_domains": ["app.example"],
                    })
                    assert created.status_code == 201, created.text
                    account = created.json()
                    tenant = {"Authorization": f"Bearer {account['api_key']}"}
                    provider = await api.post("/providers", headers=tenant, json={
                        "name": "upstream", "type": "smtp", "config": {
                            "host": "127.0.0.1", "port": upstream.port, "tls": "starttls",
                            "ca_file": str(ca_file), "username": "relay-user", "password": "s3cret upstream",
                        },
                    })
                    assert provider.status_code == 201, provider.text
                    assert "s3cret" not in provider.text
                    patched = await api.patch(f"/accounts/{account['id']}", headers=tenant,
                                              json={"default_provider_id": provider.json()["id"]})
                    assert patched.status_code == 200, patched.text

                    raw = b"From: new@app.example\r\nTo: friend@example.net\r\nSubject: first\r\n\r\nHello!\r\n"

                    def submit() -> bytes:
                        context = ssl.create_default_context()
                        context.check_hostname = False
                        context.verify_mode = ssl.CERT_NONE  # relay serve's own self-signed pair
                        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                            client.starttls(context=context)
                            client.login("new@app.example", "a good long password")
                            client.mail("new@app.example")
                            client.rcpt("friend@example.net")
                            client.rcpt("bcc-only@example.org")
                            code, text = client.data(raw)
                            assert code == 250, text
                            return text

                    queue_id = (await trio.to_thread.run_sync(submit)).decode().rsplit(" ", 1)[-1]
                    while True:
                        shown = await api.get(f"/messages/{queue_id}", headers=tenant)
                        assert shown.status_code == 200, shown.text
                        if shown.json()["status"] in ("sent", "failed"):
                            break
                        await trio.sleep(0.1)
                    message = shown.json()
                    assert message["status"] == "sent", json.dumps(message, indent=1)
                    [attempt] = message["delivery_attempts"]
                    assert attempt["outcome"] == "delivered"
                    [received] = upstream.messages
                    assert sorted(received.rcpt_tos) == ["bcc-only@example.org", "friend@example.net"]
                    assert received.content.endswith(raw.split(b"\r\n\r\n")[1])
                    assert b"bcc-only" not in received.content
        finally:
            process.terminate()
        with trio.fail_after(TIMEOUT):
            assert await process.wait() == 0, "\n".join(reader.seen)
