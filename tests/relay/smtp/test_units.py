"""The SMTP service's small parts on their own: limits (on trio's mock clock) and composition."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trio
import trio.testing

from relay.smtp.compose import MAX_HEADER_BLOCK, HeaderTooLarge, domain_allowed, prepare
from relay.smtp.limits import (
    AccountLimits,
    AuthFailureTracker,
    ConcurrencyPerIp,
    ConnectionRateLimiter,
    MemoryBudget,
    TrustedNetworks,
)

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


async def test_connection_rate_is_per_ip_and_recovers(autojump_clock: trio.testing.MockClock) -> None:
    limiter = ConnectionRateLimiter(2, TrustedNetworks(["10.0.0.0/8"]))
    assert [limiter.allow("192.0.2.1") for _ in range(3)] == [True, True, False]
    assert limiter.allow("192.0.2.2")
    assert all(limiter.allow("10.1.2.3") for _ in range(10))
    await trio.sleep(60.1)
    assert limiter.allow("192.0.2.1")


async def test_auth_failures_block_after_limit_for_block_time(autojump_clock: trio.testing.MockClock) -> None:
    tracker = AuthFailureTracker(limit=2, window=300, block_time=900)
    assert [tracker.record_failure("192.0.2.1") for _ in range(3)] == [False, False, True]
    assert tracker.is_blocked("192.0.2.1") and not tracker.is_blocked("192.0.2.2")
    await trio.sleep(899)
    assert tracker.is_blocked("192.0.2.1")
    await trio.sleep(2)
    assert not tracker.is_blocked("192.0.2.1")


async def test_failures_outside_the_window_do_not_count(autojump_clock: trio.testing.MockClock) -> None:
    tracker = AuthFailureTracker(limit=2, window=10, block_time=900)
    tracker.record_failure("ip")
    tracker.record_failure("ip")
    await trio.sleep(11)
    assert tracker.record_failure("ip") is False


def test_memory_budget_at_limit_minus_one_limit_plus_one() -> None:
    budget = MemoryBudget(100)
    assert budget.try_reserve(99)
    assert budget.try_reserve(1)
    assert not budget.try_reserve(1)
    budget.release(100)
    assert budget.statistics().in_use == 0
    assert not budget.try_reserve(101)


def test_concurrency_per_ip_at_limit_minus_one_limit_plus_one() -> None:
    per_ip = ConcurrencyPerIp(3, TrustedNetworks([]))
    for _ in range(2):
        assert per_ip.allow("192.0.2.1")
        per_ip.add("192.0.2.1")
    assert per_ip.allow("192.0.2.1")  # limit - 1 open: one more may come
    per_ip.add("192.0.2.1")
    assert not per_ip.allow("192.0.2.1")  # limit open: the next is refused
    assert per_ip.open_from("192.0.2.1") == 3
    assert per_ip.allow("192.0.2.2")  # another address is not affected
    per_ip.remove("192.0.2.1")
    assert per_ip.allow("192.0.2.1")  # a slot given back can be taken again


def test_concurrency_per_ip_forgets_addresses_with_nothing_open() -> None:
    per_ip = ConcurrencyPerIp(1, TrustedNetworks([]))
    per_ip.add("192.0.2.1")
    per_ip.add("2001:db8::1")
    assert len(per_ip) == 2
    per_ip.remove("192.0.2.1")
    per_ip.remove("2001:db8::1")
    assert len(per_ip) == 0 and per_ip.open_from("192.0.2.1") == 0
    per_ip.remove("192.0.2.1")  # never below zero
    assert per_ip.open_from("192.0.2.1") == 0 and per_ip.allow("192.0.2.1")


def test_concurrency_per_ip_exempt_networks_are_never_refused() -> None:
    per_ip = ConcurrencyPerIp(1, TrustedNetworks(["10.0.0.0/8", "2001:db8::/32"]))
    for ip in ("10.1.2.3", "2001:db8::7"):
        for _ in range(5):
            assert per_ip.allow(ip)
            per_ip.add(ip)
        for _ in range(5):
            per_ip.remove(ip)
    for ip in ("192.0.2.1", "unknown"):  # "unknown": no peer address; limited, not exempt
        per_ip.add(ip)
        assert not per_ip.allow(ip)
        per_ip.remove(ip)
    assert len(per_ip) == 0


def _header_block(size: int) -> bytes:
    """A header block of exactly ``size`` octets, in fields of at most 1000."""
    block = b"Subject: t\r\n"
    while len(block) < size:
        left = size - len(block)
        n = left if left <= 900 else min(900, left - 20)
        block += b"X-Pad: " + b"a" * (n - 9) + b"\r\n"
    assert len(block) == size
    return block


@pytest.mark.parametrize("size", [MAX_HEADER_BLOCK - 1, MAX_HEADER_BLOCK])
@pytest.mark.parametrize("body", [b"\r\nbody\r\n", b""], ids=["with-body", "header-only"])
def test_header_block_up_to_its_limit_is_accepted(size: int, body: bytes) -> None:
    out = _prepare(_header_block(size) + body)
    assert _header_block(size) in out and out.endswith(body)


@pytest.mark.parametrize("body", [b"\r\nbody\r\n", b""], ids=["with-body", "header-only"])
def test_header_block_past_its_limit_is_refused(body: bytes) -> None:
    with pytest.raises(HeaderTooLarge):
        _prepare(_header_block(MAX_HEADER_BLOCK + 1) + body)


async def test_account_limits(autojump_clock: trio.testing.MockClock) -> None:
    limits = AccountLimits()
    assert limits.may_send_message("a", per_minute=1)
    limits.record_message("a", recipients=3)
    assert not limits.may_send_message("a", per_minute=1)
    assert limits.may_send_message("a", per_minute=0)
    assert limits.may_add_recipient("a", per_hour=4, pending=0)
    assert not limits.may_add_recipient("a", per_hour=4, pending=1)
    await trio.sleep(61)
    assert limits.may_send_message("a", per_minute=1)
    assert not limits.may_add_recipient("a", per_hour=3, pending=0)
    await trio.sleep(3600)
    assert limits.may_add_recipient("a", per_hour=3, pending=0)


@pytest.mark.parametrize(
    "domain, allowed, expected",
    [
        ("example.com", ("example.com",), True),
        ("EXAMPLE.com", ("example.COM",), True),
        ("mail.example.com", ("example.com",), False),
        ("mail.example.com", ("*.example.com",), True),
        ("example.com", ("*.example.com",), True),
        ("badexample.com", ("*.example.com",), False),
        ("example.com.", ("example.com",), True),
    ],
)
def test_domain_allowed(domain: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert domain_allowed(domain, allowed) is expected


def _prepare(raw: bytes) -> bytes:
    return prepare(raw, ehlo_name="c.test", client_ip="192.0.2.1", hostname="relay.test",
                   queue_id="q1", tls=True, authenticated=True, now=NOW).raw


def test_prepare_keeps_existing_message_id_and_date() -> None:
    raw = b"Message-ID: <a@b>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"
    out = prepare(raw, ehlo_name="c", client_ip="192.0.2.1", hostname="r", queue_id="q",
                  tls=False, authenticated=True, now=NOW)
    assert out.raw.endswith(raw) and out.raw.count(b"Message-ID") == 1 and out.raw.count(b"\r\nDate:") == 1
    assert out.message_id == "<a@b>"
    assert b"with ESMTPA id q;" in out.raw


def test_prepare_adds_missing_headers_inside_the_header_block() -> None:
    out = _prepare(b"Subject: x\r\n\r\nMessage-ID: in the body\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"\r\nMessage-ID: <q1@relay.test>" in head and b"\r\nDate: Sat, 28 Nov 2026" in head
    assert body == b"Message-ID: in the body\r\n"


def test_received_header_never_names_recipients_and_has_no_crlf_injection() -> None:
    out = prepare(b"\r\nbody", ehlo_name="evil\r\nBcc: x@y", client_ip="192.0.2.1", hostname="r",
                  queue_id="q", tls=True, authenticated=True, now=NOW)
    received = out.raw.split(b"\r\n\t")[0]
    assert received.startswith(b"Received: from evil??Bcc:?x@y ")
    assert b" for " not in out.raw


def test_from_domains_are_extracted_lower_case() -> None:
    out = prepare(b"From: A <a@Example.COM>, b@other.example\r\n\r\n", ehlo_name="c", client_ip="x",
                  hostname="r", queue_id="q", tls=True, authenticated=True, now=NOW)
    assert out.from_domains == ("example.com", "other.example")


def test_bcc_fields_are_removed_with_their_continuations() -> None:
    raw = (b"From: a@example.com\r\nBcc: secret@example.org,\r\n  other@example.org\r\n"
           b"To: b@example.net\r\nresent-bcc: x@example.org\r\n\r\nBcc: in body stays\r\n")
    out = _prepare(raw)
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"secret" not in head and b"other@" not in head and b"x@example.org" not in head
    assert b"\r\nTo: b@example.net\r\n" in head
    assert body == b"Bcc: in body stays\r\n"


def test_processes_starting_together_make_one_self_signed_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two starts at once in one directory (threads here; separate processes lock the
    same way, flock being per open file): one makes the pair, the other waits for it
    and uses it — two writers would leave a key that does not match the certificate."""
    import threading
    import time

    from relay.config import Config, TlsConfig
    from relay.smtp import tls

    made: list[int] = []
    real = tls.generate_self_signed

    def slow_generate(directory: Path, hostname: str) -> tls.KeyPair:
        made.append(1)
        time.sleep(0.3)  # widen the window in which a second start could also generate
        return real(directory, hostname)

    monkeypatch.setattr(tls, "generate_self_signed", slow_generate)
    config = Config(tls=TlsConfig(self_signed_dir=str(tmp_path / "tls")))
    start = threading.Barrier(2)
    pairs: list[tls.KeyPair] = []

    def run() -> None:
        start.wait()
        pairs.append(tls.ensure_key_pair(config))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert made == [1] and len(pairs) == 2 and pairs[0] == pairs[1]
    tls.server_context(pairs[0])  # the key matches the certificate


async def test_a_sliding_window_forgets_keys_nobody_touches_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """5,000 addresses seen once leave nothing behind once their window has passed,
    even though none of them is looked at again."""
    from relay.limiting import SlidingWindow

    window = SlidingWindow(60.0, trio.current_time)
    for n in range(5000):
        window.add(f"192.0.2.{n}")
    assert len(window) == 5000
    await trio.sleep(61)
    window.add("198.51.100.1")  # any touch after the window sweeps the expired keys
    assert len(window) == 1
    assert window.count("198.51.100.1") == 1


def test_every_limiter_holds_at_most_max_keys() -> None:
    """A client choosing fresh keys (addresses, API keys) cannot grow a limiter past
    its cap, whichever algorithm it is; the oldest key goes first (erring towards allowing)."""
    from relay.limiting import SlidingWindow, TokenBuckets

    now = [0.0]
    window = SlidingWindow(60.0, lambda: now[0], max_keys=100)
    buckets = TokenBuckets(10, lambda: now[0], max_keys=100)
    for n in range(1000):
        window.add(f"k{n}")
        buckets.take(f"k{n}")
    assert len(window) == 100 and buckets.statistics().keys == 100
    assert window.count("k999") == 1 and window.count("k0") == 0
