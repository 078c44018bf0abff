"""The header work done on every message (relay/smtp/compose.py): the ``From:`` domains
the policy checks, the fields added and removed, and the bytes stored.

The earlier tests of ``prepare`` (header block limit, Received, Bcc) are in
``test_units.py``. Here: a table of ``From:`` headers, agreement with
``email.utils.getaddresses`` on well-formed address lists, and random input that may
only ever raise ``HeaderTooLarge``.
"""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.smtp.compose import MAX_HEADER_BLOCK, HeaderTooLarge, Prepared, prepare

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _prepare(raw: bytes | bytearray) -> Prepared:
    return prepare(raw, ehlo_name="c.test", client_ip="192.0.2.1", hostname="relay.test",
                   queue_id="q1", tls=True, authenticated=True, now=NOW)


FROM_TABLE = [
    ("plain", b"From: a@example.com\r\n", ("example.com",)),
    ("display name, upper case", b"From: Alice <alice@Example.COM>\r\n", ("example.com",)),
    ("folded before the angle address", b"From: Alice\r\n <alice@example.com>\r\n", ("example.com",)),
    ("folded inside the address", b"From: \"Alice\" <alice@\r\n\texample.com>\r\n", ("example.com",)),
    ("folded list", b"From: a@x.example,\r\n b@y.example\r\n", ("x.example", "y.example")),
    ("comments with specials", b"From: (Boss <x@evil.example>) a@example.com (a, b@evil.example)\r\n",
     ("example.com",)),
    ("nested comment with quoted pair", b"From: a@example.com (outer (inner \\) @evil.example) done)\r\n",
     ("example.com",)),
    ("comment inside the domain", b"From: a@example.(c)com\r\n", ("example.com",)),
    ("quoted local part with @ and comma", b'From: "a@evil.example, b"@example.com\r\n', ("example.com",)),
    ("quoted display name with specials", b'From: "Evil, Inc. <x@evil.example>" <a@example.com>\r\n',
     ("example.com",)),
    ("escaped quotes", b'From: "say \\"hi\\", x@evil.example" <a@example.com>\r\n', ("example.com",)),
    ("encoded-word display name", b"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <j@example.com>\r\n",
     ("example.com",)),
    ("encoded word holding an address", b"From: =?utf-8?q?ceo@bank.example?= <a@example.com>\r\n",
     ("example.com",)),
    ("base64 encoded word", b"From: =?utf-8?b?SsO2cmcsIEA=?= <j@example.com>\r\n", ("example.com",)),
    ("group", b"From: Team: a@x.example, B <b@Y.example>;\r\n", ("x.example", "y.example")),
    ("quoted group name", b'From: "The: Team": a@x.example;\r\n', ("x.example",)),
    ("empty group", b"From: undisclosed-recipients:;\r\n", ()),
    ("group then mailbox", b"From: g: a@x.example;, b@y.example\r\n", ("x.example", "y.example")),
    ("several addresses", b"From: a@x.example, B <b@y.example>, \"C\" <c@z.example>\r\n",
     ("x.example", "y.example", "z.example")),
    ("UTF-8 domain", "From: Jörg <joerg@BÜCHER.example>\r\n".encode(), ("bücher.example",)),
    ("A-label domain", b"From: a@XN--BCHER-KVA.example\r\n", ("xn--bcher-kva.example",)),
    ("UTF-8 local part", "From: jörg@example.com\r\n".encode(), ("example.com",)),
    ("domain literal", b"From: a@[192.0.2.1]\r\n", ("[192.0.2.1]",)),
    ("obsolete route", b"From: <@relay.example,@other.example:a@example.com>\r\n", ("example.com",)),
    ("obsolete spaces around dots", b"From: a . b @ example . com\r\n", ("example.com",)),
    ("field name case, space before colon", b"FROM : a@example.com\r\n", ("example.com",)),
    ("no @", b"From: nobody\r\n", ()),
    ("empty", b"From:\r\n", ()),
    ("null angle address", b"From: <>\r\n", ()),
    ("two @: conservative", b"From: a@good.example@evil.example\r\n", ("good.example@evil.example",)),
    ("unterminated angle", b"From: A <a@example.com\r\n", ("example.com",)),
    ("unterminated quote", b'From: "a@evil.example <x@evil.example>\r\n', ()),
    ("unterminated comment", b"From: a@example.com (x@evil.example\r\n", ("example.com",)),
    ("two fields", b"From: a@x.example\r\nSubject: s\r\nFrom: b@y.example\r\n", ("x.example", "y.example")),
    ("no From", b"Sender: a@x.example\r\nResent-From: b@y.example\r\nX-From: c@z.example\r\n", ()),
]


@pytest.mark.parametrize("fields, expected", [row[1:] for row in FROM_TABLE], ids=[row[0] for row in FROM_TABLE])
def test_from_domains(fields: bytes, expected: tuple[str, ...]) -> None:
    out = _prepare(fields + b"\r\nFrom: body@evil.example\r\n")
    assert out.from_domains == expected


def test_from_in_the_body_or_a_header_only_message() -> None:
    assert _prepare(b"\r\nFrom: a@evil.example\r\n").from_domains == ()
    assert _prepare(b"From: a@example.com").from_domains == ("example.com",)


@pytest.mark.parametrize("fields", [
    b"message-id: <m@x>\r\nDATE: Fri, 27 Nov 2026 10:00:00 +0000\r\n",
    b"Message-Id :\r\n <m@x>\r\nDate:\r\n Fri, 27 Nov 2026 10:00:00 +0000\r\n",
])
def test_present_message_id_and_date_are_kept_whatever_their_case_and_folding(fields: bytes) -> None:
    raw = fields + b"\r\nbody\r\n"
    out = _prepare(raw)
    assert out.message_id == "<m@x>"
    assert out.raw.endswith(raw) and out.raw.lower().count(b"message-id") == 1
    assert out.raw.lower().count(b"\ndate") == 1


def test_fields_are_added_after_a_header_block_without_final_crlf() -> None:
    out = _prepare(b"Subject: x")
    assert out.raw.endswith(b"\r\nSubject: x\r\nMessage-ID: <q1@relay.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n")


@pytest.mark.parametrize("bcc", [b"Bcc: s@x.example\r\n", b"BCC :\r\n s@x.example\r\n", b"Resent-bcc: s@x.example\r\n",
                                 b"bcc:\r\n"])
@pytest.mark.parametrize("where", ["first", "middle", "last", "only"])
def test_bcc_removed_wherever_it_is(bcc: bytes, where: str) -> None:
    keep = [b"From: a@example.com\r\n", b"X-Bcc: stays\r\n", b"Bcc-Note: stays\r\n"]
    fields = {"first": [bcc, *keep], "middle": [keep[0], bcc, *keep[1:]], "last": [*keep, bcc], "only": [bcc]}[where]
    out = _prepare(bytearray(b"".join(fields) + b"\r\nBcc: body@x.example\r\n"))
    head, _, body = out.raw.partition(b"\r\n\r\n")
    assert b"s@x.example" not in head and body == b"Bcc: body@x.example\r\n"
    assert head.endswith(b"\r\n".join(f.rstrip(b"\r\n") for f in fields if f != bcc) + (b"\r\n" if where != "only" else b"")
                         + b"Message-ID: <q1@relay.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000")


def test_the_body_is_stored_unchanged_and_the_input_untouched() -> None:
    body = b"\r\n" + bytes(range(256)) * 100 + b"\r\n"
    raw = bytearray(b"From: a@example.com\r\nBcc: b@example.com\r\n" + body)
    before = bytes(raw)
    out = _prepare(raw)
    assert out.raw.endswith(body) and bytes(raw) == before and isinstance(out.raw, bytes)


# ---------------------------------------------------------------- agreement with email.utils

_ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
atom = st.text(alphabet=_ATEXT, min_size=1, max_size=8)
dot_atom = st.lists(atom, min_size=1, max_size=3).map(".".join)
quoted = st.text(alphabet=_ATEXT + " @,.:;<>()[]\"\\", max_size=10).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10)
domain = st.lists(label, min_size=1, max_size=4).map(".".join)
addr_spec = st.tuples(st.one_of(dot_atom, quoted), domain).map(lambda t: f"{t[0]}@{t[1]}")
encoded_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_=", min_size=1, max_size=12).map(
    lambda s: f"=?utf-8?q?{s}?=")
phrase = st.lists(st.one_of(atom, quoted, encoded_word), min_size=1, max_size=3).map(" ".join)
comment = st.text(alphabet=_ATEXT + " @,.:;<>", max_size=12).map(lambda s: f" ({s})")
mailbox = st.one_of(
    addr_spec,
    st.tuples(phrase, addr_spec).map(lambda t: f"{t[0]} <{t[1]}>"),
    st.tuples(addr_spec, comment).map("".join),
)
mailbox_list = st.lists(mailbox, min_size=1, max_size=4).map(", ".join)
group = st.tuples(phrase, mailbox_list).map(lambda t: f"{t[0]}: {t[1]};")
address_list = st.lists(st.one_of(mailbox, group), min_size=1, max_size=3).map(", ".join)


def _fold(value: str, at: int) -> str:
    """Fold ``value`` at the first space at or after ``at`` (RFC 5322 §2.2.3)."""
    i = value.find(" ", at)
    return value if i <= 0 else value[:i] + "\r\n" + value[i:]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(value=address_list, fold_at=st.integers(0, 60))
def test_domains_agree_with_getaddresses_on_well_formed_lists(value: str, fold_at: int) -> None:
    expected = tuple(addr.rpartition("@")[2].lower() for _, addr in email.utils.getaddresses([value])
                     if "@" in addr)
    raw = f"From: {_fold(value, fold_at)}\r\n\r\nbody\r\n".encode()
    assert _prepare(raw).from_domains == expected


# ---------------------------------------------------------------- any input

FRAGMENTS = [b"\r\n", b"\r\n\r\n", b"From:", b"from :", b"Bcc:", b"Message-ID:", b"Date:", b" ", b"\t",
             b"<", b">", b"@", b",", b";", b":", b'"', b"\\", b"(", b")", b"[", b"]", b"=?utf-8?q?", b"?=",
             b"\xc3\xa9", b"\xff", b"\x00", b"\r", b"\n", b"a@b.example"]
messy = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=50).map(b"".join)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(raw=messy)
def test_any_bytes_give_a_message_or_header_too_large(raw: bytes) -> None:
    out = _prepare(bytearray(raw))
    assert all(isinstance(d, str) and d == d.lower() for d in out.from_domains)
    assert out.raw.startswith(b"Received: from c.test ") and isinstance(out.message_id, str)


@pytest.mark.parametrize("filler", [b"(", b'"', b"<", b"From: a" + b"\r\n " * 10])
def test_a_huge_pathological_header_block_is_bounded(filler: bytes) -> None:
    raw = b"From: " + filler * (MAX_HEADER_BLOCK // len(filler) + 1)
    with pytest.raises(HeaderTooLarge):
        _prepare(raw + b"\r\n\r\nbody")
    block = raw[: MAX_HEADER_BLOCK - 2] + b"\r\n"
    assert len(_prepare(block + b"\r\nbody").raw) > len(block)
