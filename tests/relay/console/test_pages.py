"""Every console page through quart's test client: sign-in and the session cookie,
CSRF, tenant isolation (another tenant's id is a 404 page), and the forms that
create, change and delete through the same storage calls as the API."""

from __future__ import annotations

import re
import uuid
from typing import Any

import attrs

from relay import hashed_secrets, models
from relay.api.app import create_app
from relay.composition import Runtime
from relay.console.session import COOKIE
from relay.models import MessageStatus, ProviderType
from relay.storage import Storage

from ..api.conftest import Tenant
from ..api.test_messages import enqueue, finish_as
from .conftest import Browser

SMTP_CONFIG = {"host": "smtp.example.net", "port": 587, "username": "u", "password": "very-secret-password"}


async def dkim_key_of(storage: Storage, tenant: Tenant, selector: str = "s1") -> models.DkimKey:
    """A stored key (its private half is never read by the console: any bytes do)."""
    return await storage.dkim_keys.create(
        key_id=uuid.uuid4(), account_id=tenant.account.id, domain="example.com", selector=selector,
        algorithm="ed25519-sha256", private_key=b"encrypted", public_key="cHVibGlj", limit=20,
    )


async def _claim_test(storage: Storage, endpoint: models.WebhookEndpoint) -> list[Any]:
    """Queue a webhook.test for ``endpoint`` and claim it as the worker would: the
    claim carries the secret the endpoint signs with now."""
    import datetime as dt

    from relay import events

    await storage.webhooks.send_test(endpoint, events.test_event(endpoint.account_id, endpoint.id,
                                                                 at=dt.datetime.now(dt.UTC)))
    return await storage.webhooks.claim(limit=10, lease_seconds=60)


async def provider_of(storage: Storage, tenant: Tenant, name: str = "up") -> models.Provider:
    return await storage.providers.create(
        account_id=tenant.account.id, name=name, type=ProviderType.SMTP, config=dict(SMTP_CONFIG),
    )


# ---------------------------------------------------------------- sign-in and session


async def test_pages_need_a_session(browser: Browser) -> None:
    for path in ("/console/", "/console/messages", "/console/providers", "/console/accounts"):
        page = await browser.get(path)
        assert page.status == 303 and page.location.endswith("/console/sign-in"), path
    page = await browser.get("/console/sign-in")
    assert page.status == 200
    assert '<label for="key">' in page.text and 'name="csrf"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"
    assert 'name="viewport"' in page.text


async def test_a_bad_key_does_not_sign_in(browser: Browser, tenant: Tenant) -> None:
    await browser.get("/console/sign-in")
    for key in ("rk_live_nope", "not a key", tenant.key + "x", ""):
        page = await browser.post("/console/sign-in", {"key": key})
        assert page.status == 401, key
        assert "not valid" in page.text
    assert (await browser.get("/console/")).status == 303


async def test_the_session_cookie_is_signed_http_only_strict_and_holds_no_key(
    browser: Browser, operator_key: str
) -> None:
    await browser.get("/console/sign-in")
    response = await browser.client.post("/console/sign-in", form={"csrf": browser.csrf, "key": operator_key})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; over TLS the flag is set (see below)
    assert operator_key not in cookie and operator_key.split("_")[-1] not in cookie
    page = await browser.get("/console/")
    assert page.status == 200 and "Operator" in page.text
    # Tampering with the cookie's value signs the browser out.
    [jar_cookie] = list(browser.client.cookie_jar)
    jar_cookie.value = jar_cookie.value[:-2] + ("AA" if not jar_cookie.value.endswith("AA") else "BB")
    assert (await browser.get("/console/")).status == 303


async def test_the_cookie_is_secure_over_tls(browser: Browser, operator_key: str) -> None:
    await browser.get("/console/sign-in")
    response = await browser.client.post(
        "/console/sign-in", form={"csrf": browser.csrf, "key": operator_key}, scheme="https",
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


async def test_secure_cookie_marks_the_cookie_secure_behind_a_tls_proxy(
    runtime: Runtime, operator_key: str
) -> None:
    """console.secure_cookie: the request came over plain HTTP (from a TLS-terminating
    proxy), yet the browser is told to send the cookie over HTTPS only."""
    config = attrs.evolve(runtime.config, console=attrs.evolve(runtime.config.console, secure_cookie=True))
    browser = Browser(create_app(attrs.evolve(runtime, config=config)))
    page = await browser.get("/console/sign-in")
    assert "Secure" in page.headers["set-cookie"]  # the signed-out session's cookie too
    response = await browser.client.post("/console/sign-in", form={"csrf": browser.csrf, "key": operator_key})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


async def test_a_rotated_key_ends_the_session(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    assert (await browser.sign_in(tenant.key)).status == 303
    assert (await browser.get("/console/messages")).status == 200
    new = hashed_secrets.new_key(hashed_secrets.ACCOUNT_KEY_PREFIX)
    assert await storage.accounts.set_api_key(tenant.account.id, api_key_hash=new.hash, api_key_prefix=new.prefix)
    page = await browser.get("/console/messages")
    assert page.status == 303 and page.location.endswith("/console/sign-in?ended=1")
    assert "Your session ended" in (await browser.get(page.location)).text
    assert (await browser.get("/console/")).status == 303  # for good: the cookie was reset
    assert (await browser.sign_in(new.secret)).status == 303


async def test_revoking_the_operator_key_ends_the_session(browser: Browser, operator_key: str, storage: Storage) -> None:
    await browser.sign_in(operator_key)
    assert (await browser.get("/console/accounts")).status == 200
    [admin] = await storage.admin_keys.list()
    assert await storage.admin_keys.revoke(admin.id)
    page = await browser.get("/console/accounts")
    assert page.status == 303 and page.location.endswith("/console/sign-in?ended=1")


async def test_disabling_the_account_ends_the_session(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    await browser.sign_in(tenant.key)
    await storage.accounts.update(tenant.account.id, disabled=True)
    assert (await browser.get("/console/")).status == 303
    await browser.get("/console/sign-in")  # the ended session's cookie has a new CSRF token
    page = await browser.post("/console/sign-in", {"key": tenant.key})
    assert page.status == 403 and "disabled" in page.text


async def test_sign_out(browser: Browser, operator_key: str) -> None:
    await browser.sign_in(operator_key)
    page = await browser.post("/console/sign-out")
    assert page.status == 303
    assert (await browser.get("/console/")).status == 303


async def test_failed_sign_ins_are_budgeted_per_address(browser: Browser, operator_key: str) -> None:
    from relay.api.context import EXTENSION

    state = browser.app.extensions[EXTENSION]
    state.auth_failures.set_rate(2)
    await browser.get("/console/sign-in")
    assert (await browser.post("/console/sign-in", {"key": "rk_admin_bad"})).status == 401
    assert (await browser.post("/console/sign-in", {"key": "rk_admin_bad"})).status == 401
    page = await browser.post("/console/sign-in", {"key": operator_key})
    assert page.status == 429 and "retry-after" in page.headers


# ---------------------------------------------------------------- CSRF


async def test_posts_without_the_csrf_token_are_refused_and_change_nothing(
    browser: Browser, tenant: Tenant, storage: Storage, operator_key: str
) -> None:
    await enqueue(storage, tenant)
    message_id = await finish_as(storage, MessageStatus.FAILED)
    await browser.sign_in(operator_key)
    for csrf in ("", "0" * 64, browser.csrf[:-1]):
        page = await browser.post(f"/console/messages/{message_id}/retry", csrf=csrf)
        assert page.status == 403, csrf
        page = await browser.post(f"/console/messages/{message_id}/delete", csrf=csrf)
        assert page.status == 403
        page = await browser.post("/console/accounts", {"name": "X", "email": "x@example.com",
                                                        "password": "long enough password"}, csrf=csrf)
        assert page.status == 403
    found = await storage.messages.get(message_id)
    assert found is not None and found.status is MessageStatus.FAILED
    assert await storage.accounts.get_by_email("x@example.com") is None
    # The forms of the account-object pages: same refusal, nothing changed.
    a = tenant.account.id
    entry = (await storage.suppressions.add(account_id=a, address="kept@example.net", reason="r")).entry
    key = await dkim_key_of(storage, tenant)
    endpoint = await storage.webhooks.create(
        account_id=a, url="https://hooks.example.com/x", events=(models.EventKind.MESSAGE_SENT,),
        secret="s" * 32, limit=20,
    )
    assert endpoint is not None
    forms = {
        f"/console/accounts/{a}/suppressions": {"address": "new@example.net", "reason": "r"},
        f"/console/accounts/{a}/suppressions/{entry.id}/delete": {},
        f"/console/accounts/{a}/dkim-keys": {"domain": "example.com", "selector": "csrf",
                                             "algorithm": "ed25519-sha256"},
        f"/console/accounts/{a}/dkim-keys/{key.id}/enabled": {"enabled": "false"},
        f"/console/accounts/{a}/dkim-keys/{key.id}/delete": {},
        f"/console/accounts/{a}/webhooks/{endpoint.id}/rotate-secret": {},
        f"/console/accounts/{a}/webhooks/{endpoint.id}/test": {},
    }
    for path, form in forms.items():
        for csrf in ("", "0" * 64):
            page = await browser.post(path, form, csrf=csrf)
            assert page.status == 403 and "did not come from this console" in page.text, path
    assert [e.id for e in await storage.suppressions.list(account_id=a)] == [entry.id]
    assert [(k.id, k.enabled) for k in await storage.dkim_keys.list(account_id=a)] == [(key.id, True)]
    assert await storage.webhooks.deliveries(endpoint.id, account_id=a) == []
    [due] = await _claim_test(storage, endpoint)
    assert due.secret == "s" * 32  # not rotated
    # Sign-in is a form too: without the token, no session.
    fresh = Browser(browser.app)
    response = await fresh.client.post("/console/sign-in", form={"key": operator_key})
    assert response.status_code == 403
    assert (await fresh.get("/console/")).status == 303


async def test_gets_change_nothing(browser: Browser, tenant: Tenant, storage: Storage, operator_key: str) -> None:
    await enqueue(storage, tenant)
    message_id = await finish_as(storage, MessageStatus.FAILED)
    await browser.sign_in(operator_key)
    for path in (f"/console/messages/{message_id}/retry", f"/console/messages/{message_id}/delete"):
        assert (await browser.get(path)).status == 404  # only a POST form acts
    found = await storage.messages.get(message_id)
    assert found is not None and found.status is MessageStatus.FAILED


# ---------------------------------------------------------------- tenant isolation


async def test_another_tenants_objects_are_404_pages(
    browser: Browser, tenant: Tenant, other: Tenant, storage: Storage
) -> None:
    await enqueue(storage, tenant)
    message_id = await finish_as(storage, MessageStatus.FAILED)
    provider = await provider_of(storage, tenant)
    rule = await storage.rules.create(account_id=tenant.account.id, provider_id=provider.id, conditions={})
    endpoint = await storage.webhooks.create(
        account_id=tenant.account.id, url="https://hooks.example.com/x",
        events=(models.EventKind.MESSAGE_SENT,), secret="s" * 32, limit=20,
    )
    assert endpoint is not None
    entry = (await storage.suppressions.add(account_id=tenant.account.id, address="x@example.net", reason="r")).entry
    key = await dkim_key_of(storage, tenant)
    await browser.sign_in(other.key)
    a = tenant.account.id
    for path in (f"/console/messages/{message_id}", f"/console/providers/{provider.id}",
                 f"/console/routing-rules/{rule.id}", f"/console/accounts/{a}/webhooks",
                 f"/console/accounts/{a}/webhooks/{endpoint.id}",
                 f"/console/accounts/{other.id}/webhooks/{endpoint.id}",
                 f"/console/accounts/{a}/suppressions", f"/console/accounts/{a}/dkim-keys",
                 f"/console/accounts/{a}/dkim-keys/{key.id}",
                 f"/console/accounts/{other.id}/dkim-keys/{key.id}",
                 "/console/accounts"):
        page = await browser.get(path)
        assert page.status == 404, path
        assert "<h1>Not found</h1>" in page.text
    for path in (f"/console/messages/{message_id}/retry", f"/console/messages/{message_id}/delete",
                 f"/console/providers/{provider.id}/delete", f"/console/routing-rules/{rule.id}/delete",
                 f"/console/accounts/{a}/webhooks/{endpoint.id}/delete",
                 f"/console/accounts/{a}/webhooks/{endpoint.id}/rotate-secret",
                 f"/console/accounts/{a}/webhooks/{endpoint.id}/test",
                 f"/console/accounts/{other.id}/webhooks/{endpoint.id}/rotate-secret",
                 f"/console/accounts/{other.id}/webhooks/{endpoint.id}/test",
                 f"/console/accounts/{a}/suppressions",
                 f"/console/accounts/{a}/suppressions/{entry.id}/delete",
                 f"/console/accounts/{other.id}/suppressions/{entry.id}/delete",
                 f"/console/accounts/{a}/dkim-keys",
                 f"/console/accounts/{a}/dkim-keys/{key.id}/enabled",
                 f"/console/accounts/{a}/dkim-keys/{key.id}/delete",
                 f"/console/accounts/{other.id}/dkim-keys/{key.id}/enabled",
                 f"/console/accounts/{other.id}/dkim-keys/{key.id}/delete",
                 f"/console/accounts/{a}/rotate-key"):
        page = await browser.post(path, {"address": "y@example.net", "domain": "example.com",
                                         "selector": "sneaky", "algorithm": "ed25519-sha256"})
        assert page.status == 404, path
        assert "<h1>Not found</h1>" in page.text
    # Listings show only B's own objects.
    for path in ("/console/messages", "/console/providers", "/console/routing-rules"):
        page = await browser.get(path)
        assert page.status == 200
        assert str(message_id) not in page.text and str(provider.id) not in page.text
    # Nothing changed.
    assert (await storage.messages.get(message_id)).status is MessageStatus.FAILED  # type: ignore[union-attr]
    assert await storage.providers.get(provider.id) is not None
    assert await storage.rules.get(rule.id) is not None
    assert [e.id for e in await storage.suppressions.list(account_id=a)] == [entry.id]
    assert [(k.id, k.enabled) for k in await storage.dkim_keys.list(account_id=a)] == [(key.id, True)]
    assert await storage.dkim_keys.list(account_id=other.account.id) == []
    assert await storage.suppressions.list(account_id=other.account.id) == []
    assert await storage.webhooks.deliveries(endpoint.id, account_id=a) == []
    # A cannot create a provider in B's account either.
    await browser.sign_in(tenant.key)
    page = await browser.post("/console/providers", {
        "account_id": other.id, "name": "sneaky", "type": "smtp", "config": '{"host": "a.example"}',
        "enabled": "true"})
    assert page.status == 422
    assert await storage.providers.list(account_id=other.account.id) == []
    # And B's pages of account objects are B's own: the nav links go there.
    await browser.sign_in(other.key)
    for family in ("webhooks", "suppressions", "dkim-keys"):
        page = await browser.get(f"/console/{family}")
        assert page.status == 303 and page.location.endswith(f"/console/accounts/{other.id}/{family}")


# ---------------------------------------------------------------- pages


async def test_overview(browser: Browser, tenant: Tenant, other: Tenant, storage: Storage, operator_key: str) -> None:
    await enqueue(storage, tenant, 3)
    await finish_as(storage, MessageStatus.SENT)
    await enqueue(storage, other, 2)
    await provider_of(storage, tenant, "tenant-upstream")
    await browser.sign_in(operator_key)
    page = await browser.get("/console/")
    assert page.status == 200
    assert page.text.count("<rect ") == 60
    assert "5 accepted in the last hour" in page.text
    assert "tenant-upstream" in page.text and "closed" in page.text
    assert re.search(r"queued</a></dt><dd>4</dd>", page.text)
    assert re.search(r"sent</a></dt><dd>1</dd>", page.text)
    assert re.search(r"oldest waiting</dt><dd>\d+ s</dd>", page.text)
    await browser.sign_in(tenant.key)
    page = await browser.get("/console/")
    assert "3 accepted in the last hour" in page.text
    assert re.search(r"queued</a></dt><dd>2</dd>", page.text)


async def test_messages_list_filters_and_pages(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    ids = await enqueue(storage, tenant, 55)
    special = await storage.messages.enqueue(models.NewMessage(
        account_id=tenant.account.id, mail_from="s@example.com", rcpt_to=("Special@Example.org",),
        raw=b"Subject: x\r\n\r\nbody\r\n",
    ))
    await browser.sign_in(tenant.key)
    page = await browser.get("/console/messages")
    assert page.status == 200
    assert page.text.count('href="/console/messages/') == 50
    assert str(special) in page.text
    nxt = re.search(r'href="(/console/messages\?cursor=[^"]+)" rel="next"', page.text)
    assert nxt is not None
    second = await browser.get(nxt.group(1).replace("&amp;", "&"))
    assert second.text.count('href="/console/messages/') == 6
    assert str(ids[0]) in second.text
    page = await browser.get("/console/messages", recipient="special@example.org")
    assert page.text.count('href="/console/messages/') == 1 and str(special) in page.text
    page = await browser.get("/console/messages", status="sent")
    assert "No messages match" in page.text
    page = await browser.get("/console/messages", since="2999-01-01T00:00")
    assert "No messages match" in page.text
    assert (await browser.get("/console/messages", status="lost")).status == 400
    assert (await browser.get("/console/messages", cursor="!!")).status == 400


async def test_message_page_retry_and_delete(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    await enqueue(storage, tenant)
    message_id = await finish_as(storage, MessageStatus.FAILED)
    await browser.sign_in(tenant.key)
    page = await browser.get(f"/console/messages/{message_id}")
    assert page.status == 200
    assert "Subject: 0" in page.text and "secret body" not in page.text  # headers only
    assert "550 no" in page.text and "Retry now" in page.text
    page = await browser.post(f"/console/messages/{message_id}/retry")
    assert page.status == 303 and page.location.endswith(f"/console/messages/{message_id}")
    found = await storage.messages.get(message_id)
    assert found is not None and found.status is MessageStatus.QUEUED
    # Being sent: neither retry nor delete (409), and no buttons.
    await storage.messages.claim(worker_id="w", limit=1, lock_seconds=60)
    page = await browser.get(f"/console/messages/{message_id}")
    assert "Retry now" not in page.text
    response = await browser.client.post(
        f"/console/messages/{message_id}/delete", form={"csrf": browser.csrf},
        headers={"Referer": f"http://localhost/console/messages/{message_id}"},
    )
    assert response.status_code == 409  # the error page leads back to where the form was
    assert f'<a href="/console/messages/{message_id}">Back to the form</a>' in await response.get_data(as_text=True)
    await storage.messages.release("w", [message_id])
    page = await browser.post(f"/console/messages/{message_id}/delete")
    assert page.status == 303
    assert await storage.messages.get(message_id) is None
    assert (await browser.get(f"/console/messages/{uuid.uuid4()}")).status == 404


async def test_message_headers_are_bounded(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    raw = b"Subject: big\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\nbody"
    message_id = await storage.messages.enqueue(models.NewMessage(
        account_id=tenant.account.id, mail_from="s@example.com", rcpt_to=("r@example.net",), raw=raw,
    ))
    await browser.sign_in(tenant.key)
    page = await browser.get(f"/console/messages/{message_id}")
    assert page.status == 200 and "Only the first 64 KiB are shown" in page.text
    assert page.text.count("a") < 70_000


async def test_accounts_create_disable_rotate(browser: Browser, storage: Storage, operator_key: str) -> None:
    await browser.sign_in(operator_key)
    page = await browser.post("/console/accounts", {
        "name": "Shop", "email": "shop@example.com", "password": "long enough password",
        "allowed_domains": "example.com, *.example.org"})
    assert page.status == 201
    key = re.search(r'value="(rk_live_[^"]+)"', page.text)
    assert key is not None
    account = await storage.accounts.get_by_email("shop@example.com")
    assert account is not None and account.allowed_domains == ("example.com", "*.example.org")
    assert account.password_hash != "long enough password"
    assert key.group(1) not in (await browser.get("/console/accounts")).text  # shown once
    # Validation is the API's: a short password, a taken email.
    page = await browser.post("/console/accounts", {"name": "A", "email": "a@example.com", "password": "short"})
    assert page.status == 422 and "password" in page.text
    page = await browser.post("/console/accounts", {"name": "A", "email": "SHOP@example.com",
                                                    "password": "long enough password"})
    assert page.status == 422 and "already exists" in page.text
    page = await browser.post(f"/console/accounts/{account.id}/disabled", {"disabled": "true"})
    assert page.status == 303
    assert (await storage.accounts.get(account.id)).disabled  # type: ignore[union-attr]
    await browser.post(f"/console/accounts/{account.id}/disabled", {"disabled": "false"})
    assert not (await storage.accounts.get(account.id)).disabled  # type: ignore[union-attr]
    page = await browser.post(f"/console/accounts/{account.id}/rotate-key")
    new = re.search(r'value="(rk_live_[^"]+)"', page.text)
    assert page.status == 200 and new is not None and new.group(1) != key.group(1)
    assert await storage.accounts.get_by_api_key_hash(hashed_secrets.hash_key(key.group(1))) is None
    assert await storage.accounts.get_by_api_key_hash(hashed_secrets.hash_key(new.group(1))) is not None


async def test_providers_create_validate_toggle_delete(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    await browser.sign_in(tenant.key)
    assert (await browser.get("/console/providers")).status == 200
    bad = await browser.post("/console/providers", {"name": "p", "type": "smtp", "config": '{"port": 25}'})
    assert bad.status == 422 and "config.host" in bad.text
    bad = await browser.post("/console/providers", {"name": "p", "type": "smtp", "config": "{nope"})
    assert bad.status == 422 and "not valid JSON" in bad.text
    assert await storage.providers.list(account_id=tenant.account.id) == []
    import json

    page = await browser.post("/console/providers", {
        "name": "upstream", "type": "smtp", "config": json.dumps(SMTP_CONFIG), "enabled": "true"})
    assert page.status == 303
    [provider] = await storage.providers.list(account_id=tenant.account.id)
    assert provider.config["password"] == SMTP_CONFIG["password"]
    page = await browser.get(page.location)
    assert page.status == 200 and "upstream" in page.text
    assert SMTP_CONFIG["password"] not in page.text and 'set&#34;: true' in page.text
    assert SMTP_CONFIG["password"] not in (await browser.get("/console/providers")).text
    await browser.post(f"/console/providers/{provider.id}/enabled", {"enabled": "false"})
    assert not (await storage.providers.get(provider.id)).enabled  # type: ignore[union-attr]
    assert (await browser.post(f"/console/providers/{provider.id}/delete")).status == 303
    assert await storage.providers.get(provider.id) is None


async def test_routing_rules_and_the_tester(browser: Browser, tenant: Tenant, storage: Storage, operator_key: str) -> None:
    default = await provider_of(storage, tenant, "default-up")
    bulk = await provider_of(storage, tenant, "bulk-up")
    await storage.accounts.update(tenant.account.id, default_provider_id=default.id)
    await browser.sign_in(operator_key)
    bad = await browser.post("/console/routing-rules", {
        "account_id": tenant.id, "provider_id": str(bulk.id), "conditions": '{"all": [{"nope": 1}]}'})
    assert bad.status == 422 and "conditions.all[0]" in bad.text
    page = await browser.post("/console/routing-rules", {
        "account_id": tenant.id, "name": "bulk", "priority": "10", "provider_id": str(bulk.id),
        "conditions": '{"header": {"name": "X-Stream", "equals": "bulk"}}', "enabled": "true"})
    assert page.status == 303
    [rule] = await storage.rules.list(account_id=tenant.account.id)
    assert rule.priority == 10 and rule.provider_id == bulk.id
    assert (await browser.get(page.location)).status == 200
    assert "bulk-up" in (await browser.get("/console/routing-rules")).text
    query = {"account_id": tenant.id, "sender": "a@example.com", "recipients": "b@example.net",
             "headers": "Subject: hi\nX-Stream: bulk", "size": "1200"}
    page = await browser.get("/console/routing-rules/test", **query)
    assert page.status == 200 and "bulk-up" in page.text and "matched rule bulk" in page.text
    page = await browser.get("/console/routing-rules/test", **{**query, "headers": "Subject: hi"})
    assert "default-up" in page.text and "account default provider" in page.text
    # A tenant tests its own routing only.
    await browser.sign_in(tenant.key)
    page = await browser.get("/console/routing-rules/test", sender="a@example.com", recipients="b@example.net")
    assert "default-up" in page.text
    await browser.sign_in(operator_key)
    assert (await browser.post(f"/console/routing-rules/{rule.id}/delete")).status == 303
    assert await storage.rules.get(rule.id) is None


async def test_webhooks(browser: Browser, tenant: Tenant, storage: Storage, operator_key: str) -> None:
    await browser.sign_in(operator_key)
    page = await browser.get("/console/webhooks")
    assert page.status == 200 and tenant.account.email in page.text
    base = f"/console/accounts/{tenant.id}/webhooks"
    assert (await browser.get(base)).status == 200
    bad = await browser.post(base, {"url": "http://10.0.0.1/x", "events": "message.sent"})
    assert bad.status == 422 and "url" in bad.text
    page = await browser.client.post(base, form=[("csrf", browser.csrf), ("url", "https://hooks.example.com/r"),
                                                 ("events", "message.sent"), ("events", "message.failed"),
                                                 ("enabled", "true")])
    text = await page.get_data(as_text=True)
    assert page.status_code == 201
    [endpoint] = await storage.webhooks.list(account_id=tenant.account.id)
    secret = await storage.webhooks.rotate_secret(endpoint.id, account_id=tenant.account.id, secret="z" * 40)
    assert secret is not None
    assert "Signing secret" in text
    assert set(endpoint.events) == {models.EventKind.MESSAGE_SENT, models.EventKind.MESSAGE_FAILED}
    page2 = await browser.get(f"{base}/{endpoint.id}")
    assert page2.status == 200 and "No deliveries yet" in page2.text and "z" * 40 not in page2.text
    import datetime as dt

    from relay import events

    await storage.webhooks.send_test(endpoint, events.test_event(tenant.account.id, endpoint.id, at=dt.datetime.now(dt.UTC)))
    page2 = await browser.get(f"{base}/{endpoint.id}")
    assert "webhook.test" in page2.text and "pending" in page2.text and "none yet" in page2.text
    await browser.post(f"{base}/{endpoint.id}/enabled", {"enabled": "false"})
    assert not (await storage.webhooks.get(endpoint.id, account_id=tenant.account.id)).enabled  # type: ignore[union-attr]
    assert (await browser.post(f"{base}/{endpoint.id}/delete")).status == 303
    assert await storage.webhooks.list(account_id=tenant.account.id) == []


async def test_static_files_and_the_api_are_unaffected(browser: Browser, operator_key: str) -> None:
    response = await browser.client.get("/console/static/console.css")
    assert response.status_code == 200
    # The API still wants its Bearer key: a console session is no API credential.
    await browser.sign_in(operator_key)
    response = await browser.client.get("/api/v1/accounts")
    assert response.status_code == 401


async def test_unknown_console_paths_are_html_404_pages(browser: Browser, operator_key: str) -> None:
    await browser.sign_in(operator_key)
    for path in ("/console/nope", "/console/messages/not-an-id", "/console/providers/1/x"):
        page = await browser.get(path)
        assert page.status == 404, path
        assert page.headers["content-type"].startswith("text/html") and "Not found" in page.text


def test_templates_and_static_files_are_installed_with_the_package() -> None:
    import configparser
    import fnmatch
    from pathlib import Path

    import relay.console

    here = Path(relay.console.__file__).parent
    setup = configparser.ConfigParser()
    setup.read(here.parent.parent / "setup.cfg")
    patterns = [p.strip() for p in setup["options.package_data"]["relay.console"].split(",")]
    files = [p.relative_to(here).as_posix() for d in ("templates", "static") for p in (here / d).iterdir()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_the_chart_has_a_bar_per_minute_scaled_to_the_busiest() -> None:
    import datetime as dt

    from relay.console.overview import CHART_HEIGHT, MINUTES, chart

    now = dt.datetime(2026, 1, 1, 12, 30, 42, tzinfo=dt.UTC)
    minute = dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.UTC)
    bars = chart([(minute - dt.timedelta(minutes=59), 2), (minute, 4),
                  (minute - dt.timedelta(minutes=60), 99)], now)  # the last one is out of range
    assert len(bars) == MINUTES
    assert (bars[0].label, bars[0].count, bars[0].height) == ("11:31", 2, CHART_HEIGHT / 2)
    assert (bars[-1].label, bars[-1].count, bars[-1].height, bars[-1].y) == ("12:30", 4, CHART_HEIGHT, 0)
    assert all(b.count == 0 and b.height == 0 for b in bars[1:-1])
    assert all(b.height == 0 for b in chart([], now))


async def test_an_empty_session_key_is_generated_and_said_so(runtime: Runtime) -> None:
    import attrs
    import structlog

    from relay.api.app import create_app
    from relay.config import ConsoleConfig
    from relay.console.session import new_session

    config = attrs.evolve(runtime.config, console=ConsoleConfig(session_key=""))
    with structlog.testing.capture_logs() as lines:
        first = create_app(attrs.evolve(runtime, config=config))
        second = create_app(attrs.evolve(runtime, config=config))
    warnings = [line for line in lines if "session_key is empty" in line["event"]]
    assert len(warnings) == 2 and warnings[0]["log_level"] == "warning"
    assert "api.processes > 1" in warnings[0]["event"]
    # Each process signs with its own random key: one's cookie means nothing to the other.
    one, two = first.extensions["relay.console"].codec, second.extensions["relay.console"].codec
    assert two.loads(one.dumps(new_session("operator", b"h" * 32))) is None
    assert one.loads(one.dumps(new_session("operator", b"h" * 32))) is not None


# ---------------------------------------------------------------- refused forms


async def test_a_refused_form_keeps_the_input_and_names_the_field(
    browser: Browser, tenant: Tenant, storage: Storage, operator_key: str
) -> None:
    await browser.sign_in(operator_key)
    page = await browser.post("/console/accounts", {
        "name": "Kept name", "email": "kept@example.com", "password": "short",
        "allowed_domains": "kept.example"})
    assert page.status == 422
    assert 'value="Kept name"' in page.text and 'value="kept@example.com"' in page.text
    assert 'value="kept.example"' in page.text and 'value="short"' not in page.text  # never a password
    assert re.search(r'id="a-password"[^>]*aria-describedby="a-password-error" aria-invalid="true"', page.text)
    assert re.search(r'<p id="a-password-error" class="error">password: too short', page.text)
    assert 'role="alert">Not saved — password: too short' in page.text
    # Providers: the type and the account chosen come back; the configuration, which
    # holds credentials, never does.
    config = '{"port": 25, "tls": "none", "password": "typed-secret"}'
    page = await browser.post("/console/providers", {
        "account_id": tenant.id, "name": "kept-up", "type": "smtp", "config": config, "enabled": "true"})
    assert page.status == 422
    assert 'value="kept-up"' in page.text and "typed-secret" not in page.text
    assert f'<option value="{tenant.id}" selected>' in page.text
    assert re.search(r'<p id="p-config-error" class="error">config.host: is required', page.text)
    # Routing rules: the conditions and the priority typed.
    page = await browser.post("/console/routing-rules", {
        "account_id": tenant.id, "priority": "7", "provider_id": str(uuid.uuid4()),
        "conditions": '{"nope": 1}'})
    assert page.status == 422 and 'value="7"' in page.text and "{&#34;nope&#34;: 1}" in page.text
    assert 'id="r-conditions-error"' in page.text
    # Webhooks: the unchecked events stay unchecked.
    base = f"/console/accounts/{tenant.id}/webhooks"
    page = await browser.post(base, {"url": "http://10.0.0.1/x", "events": "message.failed",
                                     "description": "kept desc"})
    assert page.status == 422 and 'value="kept desc"' in page.text and 'id="w-url-error"' in page.text
    assert 'value="message.failed" checked' in page.text and 'value="message.sent" checked' not in page.text
    assert 'name="enabled" value="true" checked' not in page.text
    page = await browser.post(base, {"url": "https://hooks.example.com/x", "description": "none"})
    assert page.status == 422 and 'id="w-events-error"' in page.text
    assert await storage.webhooks.list(account_id=tenant.account.id) == []
    # A conflict names no control: it is said above the form, the input kept.
    from relay.api.webhooks import MAX_PER_ACCOUNT

    for i in range(MAX_PER_ACCOUNT):
        await storage.webhooks.create(
            account_id=tenant.account.id, url=f"https://hooks.example.com/{i}",
            events=(models.EventKind.MESSAGE_SENT,), secret="s" * 32, limit=MAX_PER_ACCOUNT,
        )
    page = await browser.post(base, {"url": "https://hooks.example.com/one-more", "events": "message.sent"})
    assert page.status == 409 and 'value="https://hooks.example.com/one-more"' in page.text
    assert f'role="alert">Not saved — this account has {MAX_PER_ACCOUNT} webhook endpoints' in page.text
    assert len(await storage.webhooks.list(account_id=tenant.account.id)) == MAX_PER_ACCOUNT


# ---------------------------------------------------------------- suppressions


async def test_suppressions_list_add_refresh_filter_remove(
    browser: Browser, tenant: Tenant, storage: Storage, operator_key: str
) -> None:
    import datetime as dt

    a = tenant.account.id
    await browser.sign_in(operator_key)
    page = await browser.get("/console/suppressions")
    assert page.status == 200 and tenant.account.email in page.text
    assert f'href="/console/accounts/{tenant.id}/suppressions"' in page.text
    base = f"/console/accounts/{tenant.id}/suppressions"
    page = await browser.get(base)
    assert page.status == 200 and "No suppressed addresses" in page.text
    assert '<label for="s-address">' in page.text and '<label for="s-expires">' in page.text
    # The API's checks: an address, an expiry in the future.
    page = await browser.post(base, {"address": "not an address", "reason": "kept reason"})
    assert page.status == 422 and 'id="s-address-error"' in page.text and 'value="kept reason"' in page.text
    page = await browser.post(base, {"address": "x@example.net", "expires_at": "2001-01-01T00:00"})
    assert page.status == 422 and "is in the past" in page.text and 'value="2001-01-01T00:00"' in page.text
    assert await storage.suppressions.list(account_id=a) == []
    page = await browser.post(base, {"address": "Bob@Example.net", "reason": "asked us",
                                     "expires_at": "2999-01-01T12:30"})
    assert page.status == 303 and page.location.endswith(f"{base}?done=added")
    [entry] = await storage.suppressions.list(account_id=a)
    assert (entry.address, entry.reason, str(entry.source)) == ("Bob@Example.net", "asked us", "manual")
    assert entry.expires_at == dt.datetime(2999, 1, 1, 12, 30, tzinfo=dt.UTC)  # the form says UTC
    page = await browser.get(page.location)
    assert "Added: mail to the address is refused" in page.text and "Bob@Example.net" in page.text
    assert "2999-01-01 12:30" in page.text
    # The same address again (any case) refreshes the entry.
    page = await browser.post(base, {"address": "bob@example.net", "reason": "again"})
    assert page.location.endswith("done=refreshed")
    [entry] = await storage.suppressions.list(account_id=a)
    assert entry.reason == "again" and entry.expires_at is None
    for i in range(52):
        await storage.suppressions.add(account_id=a, address=f"n{i}@example.org", reason="bulk")
    page = await browser.get(base)
    assert page.text.count("<th scope=\"row\">") == 50
    nxt = re.search(r'href="([^"]+cursor=[^"]+)" rel="next"', page.text)
    assert nxt is not None
    older = await browser.get(nxt.group(1).replace("&amp;", "&"))
    assert older.text.count("<th scope=\"row\">") == 3
    page = await browser.get(base, address="BOB@")
    assert page.text.count("<th scope=\"row\">") == 1 and "Bob@Example.net" in page.text
    page = await browser.get(base, address="nobody-matches")
    assert "No entries match" in page.text
    page = await browser.get(base, source="bounce")
    assert "No entries match" in page.text
    assert (await browser.get(base, source="lost")).status == 400
    assert (await browser.get(base, cursor="!!")).status == 400
    page = await browser.post(f"{base}/{entry.id}/delete")
    assert page.status == 303 and page.location.endswith("done=removed")
    assert await storage.suppressions.get(entry.id, account_id=a) is None
    assert (await browser.post(f"{base}/{entry.id}/delete")).status == 404
    # An account key lands on its own list.
    await browser.sign_in(tenant.key)
    page = await browser.get("/console/suppressions")
    assert page.status == 303 and page.location.endswith(base)
    assert "n51@example.org" in (await browser.get(base)).text


# ---------------------------------------------------------------- DKIM keys


async def test_dkim_keys_create_show_toggle_delete(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    a = tenant.account.id
    await browser.sign_in(tenant.key)
    page = await browser.get("/console/dkim-keys")
    assert page.status == 303
    base = f"/console/accounts/{tenant.id}/dkim-keys"
    page = await browser.get(base)
    assert page.status == 200 and "No DKIM keys yet" in page.text and "Create key" in page.text
    # The API's rules: one of the account's domains; a selector free in DNS.
    page = await browser.post(base, {"domain": "elsewhere.example", "selector": "s1", "algorithm": "ed25519-sha256"})
    assert page.status == 422 and 'id="k-domain-error"' in page.text
    assert "not one of this account&#39;s allowed_domains" in page.text and 'value="elsewhere.example"' in page.text
    page = await browser.post(base, {"domain": "example.com", "selector": "bad_selector!", "algorithm": "ed25519-sha256"})
    assert page.status == 422 and 'id="k-selector-error"' in page.text
    page = await browser.post(base, {"domain": "example.com", "selector": "2026a", "algorithm": "ed25519-sha256"})
    assert page.status == 303 and "created=1" in page.location
    [key] = await storage.dkim_keys.list(account_id=a)
    assert (key.domain, key.selector, key.algorithm, key.enabled) == ("example.com", "2026a", "ed25519-sha256", True)
    page = await browser.get(page.location)
    assert page.status == 200 and "Publish this record in DNS now" in page.text
    assert 'value="2026a._domainkey.example.com"' in page.text
    assert f"v=DKIM1; k=ed25519; p={key.public_key}" in page.text
    assert "PRIVATE KEY" not in page.text and key.private_key.hex() not in page.text
    listing = await browser.get(base)
    assert "2026a._domainkey.example.com" in listing.text and f"p={key.public_key}" in listing.text
    # Taken: the error is the selector's, and the input comes back.
    page = await browser.post(base, {"domain": "example.com", "selector": "2026A", "algorithm": "ed25519-sha256"})
    assert page.status == 409 and 'id="k-selector-error"' in page.text and 'value="2026A"' in page.text
    assert len(await storage.dkim_keys.list(account_id=a)) == 1
    assert (await browser.post(f"{base}/{key.id}/enabled", {"enabled": "false"})).status == 303
    assert not (await storage.dkim_keys.get(key.id)).enabled  # type: ignore[union-attr]
    assert (await browser.post(f"{base}/{key.id}/delete")).status == 303
    assert await storage.dkim_keys.list(account_id=a) == []
    assert (await browser.get(f"{base}/{key.id}")).status == 404


async def test_dkim_keys_without_a_key_encryption_key_say_so(
    runtime: Runtime, tenant: Tenant, storage: Storage
) -> None:
    import attrs

    from relay.api.app import create_app
    from relay.config import DkimConfig

    config = attrs.evolve(runtime.config, dkim=DkimConfig())
    browser = Browser(create_app(attrs.evolve(runtime, config=config)))
    await dkim_key_of(storage, tenant)
    await browser.sign_in(tenant.key)
    base = f"/console/accounts/{tenant.id}/dkim-keys"
    page = await browser.get(base)
    assert page.status == 200
    assert "DKIM keys cannot be created here: dkim.key_encryption_key is not set" in page.text
    assert "RELAY_DKIM__KEY_ENCRYPTION_KEY" in page.text and "Create key" not in page.text
    assert "s1._domainkey.example.com" in page.text  # the keys there are still listed
    page = await browser.post(base, {"domain": "example.com", "selector": "s2", "algorithm": "ed25519-sha256"})
    assert page.status == 409 and "dkim.key_encryption_key is not set" in page.text
    assert len(await storage.dkim_keys.list(account_id=tenant.account.id)) == 1


# ---------------------------------------------------------------- webhook actions


async def test_webhook_rotate_secret_and_send_test(browser: Browser, tenant: Tenant, storage: Storage) -> None:
    endpoint = await storage.webhooks.create(
        account_id=tenant.account.id, url="https://hooks.example.com/r",
        events=(models.EventKind.MESSAGE_SENT,), secret="old-secret-" * 4, limit=20,
    )
    assert endpoint is not None
    await browser.sign_in(tenant.key)
    base = f"/console/accounts/{tenant.id}/webhooks/{endpoint.id}"
    page = await browser.get(base)
    assert page.status == 200 and "Send test event" in page.text and "Rotate secret" in page.text
    page = await browser.post(f"{base}/rotate-secret")
    assert page.status == 200 and "Secret rotated" in page.text
    shown = re.search(r'id="secret" class="secret" readonly value="([^"]+)"', page.text)
    assert shown is not None and shown.group(1).startswith("whsec_")
    assert shown.group(1) not in (await browser.get(base)).text  # shown once
    page = await browser.post(f"{base}/test")
    assert page.status == 303 and "tested=" in page.location
    [delivery] = await storage.webhooks.deliveries(endpoint.id, account_id=tenant.account.id)
    assert str(delivery.id) in page.location
    page = await browser.get(page.location)
    assert 'id="test-result"' in page.text and "Test event queued" in page.text
    assert 'class="highlight"' in page.text and "webhook.test" in page.text
    # The worker claims it with the new secret; once settled, the page says how it went.
    [due] = await storage.webhooks.claim(limit=10, lease_seconds=60)
    assert due.id == delivery.id and due.secret == shown.group(1)
    from relay.storage.webhooks import Settlement

    await storage.webhooks.settle([Settlement(
        delivery_id=due.id, attempt=due.attempt, status=models.WebhookDeliveryStatus.DELIVERED,
        status_code=204, error=None, duration_ms=12,
    )])
    page = await browser.get(base, tested=str(delivery.id))
    assert "Test event delivered: HTTP 204" in page.text
