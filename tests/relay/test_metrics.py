"""``GET /metrics`` from a running ``relay serve`` after real traffic.

``relay serve`` runs as a subprocess; mail goes in with smtplib (one failed login
too), out to an aiosmtpd upstream, the API is called with good and bad keys; then
every series the operations issue names must be there with values that fit what
was done.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from pathlib import Path

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from .test_cli import TIMEOUT, _env, start_relay, wait_until_serving
from .worker.upstream import aiosmtpd_upstream

PASSWORD = "a good long password"
RAW = b"From: app@app.example\r\nTo: friend@example.net\r\nSubject: m\r\n\r\nHello!\r\n"


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample: (name, labels) -> value."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def submit(port: int, password: str, count: int) -> int:
    """One session; the messages acknowledged (0 when the login is refused)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # relay's own self-signed pair
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=context)
        try:
            client.login("app@app.example", password)
        except smtplib.SMTPAuthenticationError:
            return 0
        for _ in range(count):
            client.sendmail("app@app.example", ["friend@example.net"], RAW)
    return count


async def test_metrics_after_real_traffic(database_url: str, tmp_path: Path) -> None:
    env = _env(
        database_url, tmp_path, RELAY_WORKER__POLL_INTERVAL="0.2", RELAY_METRICS__SAMPLE_INTERVAL="0.2",
        RELAY_SMTP__AUTH_FAILURE_DELAY="0",
    )
    async with aiosmtpd_upstream(None, tls="none", auth=False) as upstream, trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "serve", env)
        try:
            with trio.fail_after(TIMEOUT):
                serving = await wait_until_serving(reader)
                nursery.start_soon(reader.rest)
                operator = {"Authorization": f"Bearer {serving.operator_key}"}
                async with httpx.AsyncClient(base_url=serving.api_url) as api:
                    created = await api.post("/api/v1/accounts", headers=operator, json={
                        "name": "App", "email": "app@app.example", "password": PASSWORD,
                        "allowed_domains": ["app.example"],
                    })
                    assert created.status_code == 201, created.text
                    account = created.json()
                    tenant = {"Authorization": f"Bearer {account['api_key']}"}
                    provider = await api.post("/api/v1/providers", headers=tenant, json={
                        "name": "up", "type": "smtp",
                        "config": {"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
                    })
                    assert provider.status_code == 201, provider.text
                    provider_id = provider.json()["id"]
                    assert (await api.patch(f"/api/v1/accounts/{account['id']}", headers=tenant,
                                            json={"default_provider_id": provider_id})).status_code == 200
                    assert (await api.get("/api/v1/providers", headers={
                        "Authorization": "Bearer rk_live_not-a-key"})).status_code == 401
                    # a method of the client's own invention must not become a series
                    assert (await api.request("BREW-7f3a", "/api/v1/providers", headers=tenant)).status_code == 405

                    assert await trio.to_thread.run_sync(submit, serving.smtp_port, "wrong password", 1) == 0
                    assert await trio.to_thread.run_sync(submit, serving.smtp_port, PASSWORD, 2) == 2
                    while len(upstream.messages) < 2:
                        await trio.sleep(0.05)
                    # The sampler (every 0.2 s here) has seen both sent.
                    while True:
                        reply = await api.get("/metrics")
                        assert reply.status_code == 200
                        samples = scrape(reply.text)
                        if samples.get(("queue_depth", frozenset({("status", "sent")}))) == 2:
                            break
                        await trio.sleep(0.1)
        finally:
            process.terminate()
        with trio.fail_after(TIMEOUT):
            await process.wait()

    assert reply.headers["content-type"].startswith("text/plain")
    # SMTP
    assert value(samples, "smtp_connections_total", status="accepted") == 2
    assert value(samples, "smtp_active_sessions") == 0
    assert value(samples, "smtp_message_enqueued_total") == 2
    assert value(samples, "smtp_auth_attempts_total", result="success") == 1
    # smtplib tries each mechanism offered (PLAIN, then LOGIN) before giving up.
    failures = value(samples, "smtp_auth_attempts_total", result="failure")
    assert failures >= 1 and value(samples, "smtp_replies_total", code="535") == failures
    assert value(samples, "smtp_replies_total", code="250") >= 6  # EHLO x2 (after TLS), MAIL, RCPT, DATA end x2
    assert value(samples, "smtp_enqueue_duration_seconds_count") == 2
    assert 0 < value(samples, "smtp_enqueue_duration_seconds_sum") < 10
    # API: route templates, never a raw id
    assert value(samples, "api_requests_total", method="POST", path="/api/v1/accounts", status="201") == 1
    assert value(samples, "api_requests_total", method="PATCH",
                 path="/api/v1/accounts/<uuid:account_id>", status="200") == 1
    assert value(samples, "api_auth_failures_total") == 1
    assert value(samples, "api_requests_total", method="other", path="unmatched", status="405") == 1
    methods = {dict(labels).get("method") for (name, labels) in samples if name == "api_requests_total"}
    assert methods <= {"GET", "POST", "PATCH", "other"}
    paths = {dict(labels).get("path") for (name, labels) in samples if name == "api_requests_total"}
    assert not any(account["id"] in p for p in paths if p)
    assert value(samples, "api_request_duration_seconds_count", method="POST", path="/api/v1/accounts") == 1
    # Database
    assert value(samples, "db_connections_max") == 10
    assert value(samples, "db_connections_idle") + value(samples, "db_connections_active") >= 1
    assert value(samples, "db_operations_waiting") == 0
    queries = {dict(labels)["query"] for (name, labels) in samples if name == "db_query_duration_seconds_count"}
    assert "MessageRepository.claim.take" in queries and "store_messages" in queries
    assert "# TYPE db_errors_total counter" in reply.text
    # Queue and worker
    assert value(samples, "queue_depth", status="queued") == 0
    assert value(samples, "queue_oldest_message_age_seconds") == 0
    assert value(samples, "queue_processing_duration_seconds_count") == 2
    assert value(samples, "delivery_attempts_total", provider_type="smtp", outcome="delivered") == 2
    assert value(samples, "provider_circuit_state", provider=provider_id) == 0
    # TLS: relay serve's own self-signed pair
    assert 300 < value(samples, "tls_cert_expiry_days") < 4000


async def test_a_worker_alone_serves_metrics_on_metrics_listen(database_url: str, tmp_path: Path) -> None:
    env = _env(database_url, tmp_path, RELAY_METRICS__LISTEN="127.0.0.1:0",
               RELAY_METRICS__SAMPLE_INTERVAL="0.2")
    async with trio.open_nursery() as nursery:
        process, reader = await start_relay(nursery, "worker", env)
        try:
            with trio.fail_after(TIMEOUT):
                line = await reader.until(lambda line: '"metrics listening"' in line, "metrics listening")
                nursery.start_soon(reader.rest)
                url = "http://" + json.loads(line)["listen"] + "/metrics"
                async with httpx.AsyncClient() as client:
                    while True:
                        reply = await client.get(url)
                        assert reply.status_code == 200
                        if "queue_depth{" in reply.text:
                            break
                        await trio.sleep(0.1)
        finally:
            process.terminate()
        with trio.fail_after(TIMEOUT):
            assert await process.wait() == 0
    samples = scrape(reply.text)
    assert value(samples, "queue_depth", status="queued") == 0
