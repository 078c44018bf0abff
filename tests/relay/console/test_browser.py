"""The console in a real headless Chromium, against a whole relay.

The relay runs as ``relay serve`` does (``composition.serve`` with smtp, api and worker); the
upstream is aiosmtpd with STARTTLS and AUTH (``tests/relay/worker/upstream.py``). The
browser signs in with the operator key that start-up announces, creates an account, a
provider and a routing rule through the console's forms, suppresses an address and
makes a DKIM key (seeing its DNS record), then disables it; a message is submitted with
smtplib (STARTTLS + AUTH), found on the messages page and watched until sent by
reloading; a second message, refused by the upstream, fails, and Retry (after the
upstream stops refusing) shows its new attempt. Finally a second tenant, signed in
with the key the console showed it once, gets the 404 page for the first tenant's
message.

Playwright's synchronous API drives Debian's ``/usr/bin/chromium`` (never a
downloaded browser) from one thread of its own (its objects belong to the thread that
made them); the trio test hands it work and waits without blocking the relay. One
browser per module. Screenshots of every page are kept under the test's ``tmp_path``
and copied to ``$RELAY_TEST_ARTIFACTS`` when it is set.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import json
import os
import queue
import re
import shutil
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from relay import composition
from relay.config import Config

from ..smtp import conftest as smtp_fixtures
from ..smtp.conftest import in_thread
from ..worker.upstream import PASSWORD as UPSTREAM_PASSWORD
from ..worker.upstream import USER as UPSTREAM_USER
from ..worker.upstream import aiosmtpd_upstream

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium (Debian's chromium package): the browser tests need a real Chromium",
)

SMTP_PASSWORD = "console test password"
REFUSED = "refused@example.net"
SUPPRESSED = "gone@example.net"
#: Seconds the browser waits for the relay to deliver (or fail) a message.
DEADLINE = 20.0

# The SMTP service's fixtures (config, certificate, CA, client TLS), reused by name.
ca = smtp_fixtures.ca
tls_files = smtp_fixtures.tls_files
client_context = smtp_fixtures.client_context
relay_config = smtp_fixtures.relay_config


@pytest.fixture
def smtp_env() -> dict[str, str]:
    return {
        "RELAY_API__LISTEN": "127.0.0.1:0",
        "RELAY_CONSOLE__SESSION_KEY": "browser-test-session-key",
        "RELAY_WORKER__POLL_INTERVAL": "0.05",
        "RELAY_WORKER__CONNECT_TIMEOUT": "5",
        "RELAY_WORKER__SEND_TIMEOUT": "5",
        "RELAY_DKIM__KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    }


class BrowserThread:
    """One thread that owns Playwright and the browser; ``call`` runs work on it."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], concurrent.futures.Future[Any]] | None] = queue.Queue()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="chromium", daemon=True)
        self._thread.start()
        self._ready.result(timeout=60)

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                self._ready.set_result(None)
                while (job := self._jobs.get()) is not None:
                    work, future = job
                    try:
                        future.set_result(work(browser))
                    except BaseException as exc:  # noqa: BLE001 - handed to the waiting test
                        future.set_exception(exc)
                browser.close()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    async def call(self, work: Callable[[Any], Any]) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((work, future))
        return await trio.to_thread.run_sync(future.result)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def chromium() -> Iterator[BrowserThread]:
    browser = BrowserThread()
    yield browser
    browser.close()


class Shots:
    """Screenshots: under ``tmp_path`` and, when set, ``$RELAY_TEST_ARTIFACTS``."""

    def __init__(self, where: Path) -> None:
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page: Any, name: str) -> None:
        path = self.where / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)

    def publish(self) -> None:
        target = os.environ.get("RELAY_TEST_ARTIFACTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            for path in self.taken:
                shutil.copy(path, Path(target) / f"console-{path.name}")


def wait_for_status(page: Any, wanted: str, attempts: int = 1) -> None:
    """Reload the message page until it shows ``wanted`` with at least ``attempts``
    attempt rows (the relay works in the background)."""
    deadline = DEADLINE * 1000
    waited = 0
    while True:
        status = page.inner_text("#status")
        rows = page.locator("#attempts tbody tr").count()
        if status == wanted and rows >= attempts:
            return
        if waited >= deadline:
            raise AssertionError(f"message still {status} with {rows} attempt(s) after {DEADLINE} s")
        page.wait_for_timeout(100)
        waited += 100
        page.reload()


async def test_the_console_end_to_end(
    chromium: BrowserThread, relay_config: Config, client_context: ssl.SSLContext, ca: trustme.CA,
    tmp_path: Path,
) -> None:
    upstream_ca = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(upstream_ca))
    shots = Shots(tmp_path / "screenshots")
    announced: list[str] = []
    try:
        async with aiosmtpd_upstream(ca, refuse={REFUSED: "550 5.1.1 no such user"}) as up, \
                trio.open_nursery() as nursery:
            started: composition.Started = await nursery.start(functools.partial(
                composition.serve, relay_config, services=("smtp", "api", "worker"), handle_signals=False,
                announce=announced.append,
            ))
            [operator_key] = announced  # what `relay serve` prints at first start
            base = started.api.url + "/console"
            provider_config = json.dumps({
                "host": "127.0.0.1", "port": up.port, "tls": "starttls", "ca_file": str(upstream_ca),
                "username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD,
            })

            def set_up(browser: Any) -> dict[str, str]:
                context = browser.new_context(viewport={"width": 1100, "height": 800})
                page = context.new_page()
                page.goto(base + "/")
                assert page.url.endswith("/console/sign-in")
                shots.take(page, "sign-in")
                page.get_by_label("API key").fill(operator_key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/")
                assert page.get_by_role("heading", name="Overview").is_visible()
                keys = {}
                for name, email in (("Tenant A", "a@example.com"), ("Tenant B", "b@example.com")):
                    page.get_by_role("link", name="Accounts", exact=True).click()
                    page.get_by_label("Name").fill(name)
                    page.get_by_label("SMTP login (email)").fill(email)
                    page.get_by_label("SMTP password").fill(SMTP_PASSWORD)
                    page.get_by_label("Allowed sender domains").fill("example.com")
                    page.get_by_role("button", name="Create account").click()
                    assert page.get_by_role("heading", name="Account created").is_visible()
                    keys[name] = page.get_by_label("API key").input_value()
                    if name == "Tenant A":
                        shots.take(page, "account-created")
                page.goto(base + "/accounts")
                shots.take(page, "accounts")
                page.get_by_role("link", name="Providers", exact=True).click()
                page.get_by_label("Account").select_option(label="Tenant A (a@example.com)")
                page.get_by_label("Name").fill("upstream")
                page.get_by_label("Type").select_option("smtp")
                page.get_by_label("Config (JSON)").fill(provider_config)
                page.get_by_role("button", name="Create provider").click()
                assert page.get_by_role("heading", name="Provider upstream").is_visible()
                assert UPSTREAM_PASSWORD not in page.content()
                shots.take(page, "provider")
                page.get_by_role("link", name="Routing rules", exact=True).click()
                page.get_by_label("Account").select_option(label="Tenant A (a@example.com)")
                page.get_by_label("Name").fill("everything")
                page.get_by_label("Conditions (JSON)").fill("{}")
                page.get_by_role("button", name="Create rule").click()
                assert page.get_by_role("heading", name="Routing rule everything").is_visible()
                page.get_by_role("link", name="Routing rules", exact=True).click()
                shots.take(page, "routing-rules")
                page.get_by_role("link", name=re.compile("Which provider")).click()
                page.get_by_label("Account").select_option(label="Tenant A (a@example.com)")
                page.get_by_label("Sender (MAIL FROM)").fill("alice@example.com")
                page.get_by_label("Recipients").fill("bob@example.net")
                page.get_by_role("button", name="Route it").click()
                assert "matched rule everything" in page.content()
                assert page.inner_text("#route-result").endswith("upstream")
                shots.take(page, "route-tester")
                page.get_by_role("link", name="Webhooks", exact=True).click()
                page.get_by_role("link", name=re.compile("Tenant A")).click()
                shots.take(page, "webhooks")
                # Suppressions: pick the account, add an address, see it listed.
                page.get_by_role("link", name="Suppressions", exact=True).click()
                page.get_by_role("link", name=re.compile("Tenant A")).click()
                page.get_by_label("Address", exact=True).fill(SUPPRESSED)
                page.get_by_label("Reason").fill("asked to stop")
                page.get_by_role("button", name="Suppress address").click()
                assert page.get_by_role("status").inner_text().startswith("Added")
                assert SUPPRESSED in page.inner_text("#suppressions")
                shots.take(page, "suppressions")
                # DKIM keys: make one (Ed25519: quick to generate), see its DNS record,
                # and disable it again so the messages below go out as before.
                page.get_by_role("link", name="DKIM keys", exact=True).click()
                page.get_by_role("link", name=re.compile("Tenant A")).click()
                page.get_by_label("Domain").fill("example.com")
                page.get_by_label("Selector").fill("console")
                page.get_by_label("Algorithm").select_option("ed25519-sha256")
                page.get_by_role("button", name="Create key").click()
                assert page.get_by_label("Name", exact=True).input_value() == "console._domainkey.example.com"
                assert page.get_by_label("Value").input_value().startswith("v=DKIM1; k=ed25519; p=")
                shots.take(page, "dkim-key")
                page.get_by_role("button", name="Disable").click()
                assert "console._domainkey.example.com" in page.inner_text("#dkim-keys")
                shots.take(page, "dkim-keys")
                page.close()
                context.close()
                return keys

            keys = await chromium.call(set_up)

            def submit(rcpt: str, subject: str) -> None:
                with smtplib.SMTP("127.0.0.1", started.smtp.ports[0], local_hostname="client.test",
                                  timeout=10) as client:
                    client.ehlo()
                    client.starttls(context=client_context)
                    client.ehlo()
                    client.login("a@example.com", SMTP_PASSWORD)
                    client.sendmail("alice@example.com", [rcpt], (
                        f"From: alice@example.com\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nHello\r\n"
                    ).encode())

            await in_thread(lambda: submit("bob@example.net", "to bob"))
            await in_thread(lambda: submit(REFUSED, "to nobody"))

            def watch(browser: Any) -> dict[str, str]:
                context = browser.new_context(viewport={"width": 1100, "height": 800})
                page = context.new_page()
                page.goto(base + "/sign-in")
                page.get_by_label("API key").fill(operator_key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/")
                page.get_by_role("link", name="Messages", exact=True).click()
                assert page.locator("tbody tr").count() == 2
                shots.take(page, "messages")
                page.get_by_label("Recipient").fill("bob@example.net")
                page.get_by_role("button", name="Filter").click()
                page.locator("tbody tr th a").first.click()
                sent_url = page.url
                wait_for_status(page, "sent")
                assert "250 2.0.0 OK queued" in page.inner_text("#attempts")
                assert "Subject: to bob" in page.inner_text("pre.headers")
                shots.take(page, "message-sent")
                page.get_by_role("link", name="Messages", exact=True).click()
                page.get_by_label("Recipient").fill(REFUSED)
                page.get_by_role("button", name="Filter").click()
                page.locator("tbody tr th a").first.click()
                failed_url = page.url
                wait_for_status(page, "failed")
                assert "550 5.1.1 no such user" in page.inner_text("#attempts")
                shots.take(page, "message-failed")
                # The hard bounce put the address on the suppression list: mail to it,
                # a retry included, stays stopped until the entry is removed.
                page.get_by_role("link", name="Suppressions", exact=True).click()
                page.get_by_role("link", name=re.compile("Tenant A")).click()
                assert REFUSED in page.inner_text("#suppressions")
                page.once("dialog", lambda dialog: dialog.accept())  # "Remove …? Mail to it …"
                with page.expect_navigation():
                    page.get_by_role("button", name=f"Remove {REFUSED}").click()
                assert REFUSED not in page.inner_text("#suppressions")
                page.close()
                context.close()
                return {"sent": sent_url, "failed": failed_url}

            urls = await chromium.call(watch)
            up.refuse.clear()  # the upstream takes the address now: Retry delivers it

            def retry(browser: Any) -> None:
                context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
                page = context.new_page()
                page.goto(base + "/sign-in")
                page.get_by_label("API key").fill(operator_key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/")
                page.goto(urls["failed"])
                with page.expect_navigation():
                    page.get_by_role("button", name="Retry now").click()
                wait_for_status(page, "sent", attempts=2)
                rows = page.locator("#attempts tbody tr")
                assert "550 5.1.1" in rows.nth(0).inner_text()
                assert "250 2.0.0 OK queued" in rows.nth(1).inner_text()
                shots.take(page, "message-retried-phone")
                page.goto(base + "/")
                assert page.get_by_role("img").count() == 1  # the per-minute chart
                shots.take(page, "overview-phone")
                # Keyboard: the skip link is the first stop and takes focus to the content.
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.textContent") == "Skip to content"
                page.get_by_role("button", name="Sign out").click()
                page.wait_for_url(base + "/sign-in")
                # Tenant B: its own key, shown once by the console; A's message is a 404 page.
                page.get_by_label("API key").fill(keys["Tenant B"])
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(base + "/")
                response = page.goto(urls["sent"])
                assert response is not None and response.status == 404
                assert page.get_by_role("heading", name="Not found").is_visible()
                shots.take(page, "tenant-b-404")
                page.goto(base + "/messages")
                assert "No messages match" in page.content()
                context.close()

            await chromium.call(retry)
            storage = started.runtime.storage
            messages = await storage.messages.list()
            assert sorted(str(m.status) for m in messages) == ["sent", "sent"]
            assert len(up.messages) == 2
            started.shutdown.set()
    finally:
        shots.publish()
    assert len(shots.taken) >= 15
