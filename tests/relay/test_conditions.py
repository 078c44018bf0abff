"""relay.conditions: the grammar in the module docstring, leaf by leaf, and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from relay import conditions
from relay.conditions import ConditionError, MessageFacts, matches, parse

RAW = (
    b"From: Alice <alice@example.com>\r\n"
    b"Subject: =?utf-8?q?Sp=C3=A9cial?= offer\r\n"
    b"X-Campaign: Spring\r\n"
    b"  Sale\r\n"
    b"X-Campaign: second\r\n"
    b"\r\n"
    b"X-Not-A-Header: body\r\n"
)


def facts(rcpt: tuple[str, ...] = ("bob@gmail.com", "carol@mail.example.org"), *,
          mail_from: str = "Alice@Example.com", raw: bytes = RAW) -> MessageFacts:
    return MessageFacts.from_raw(mail_from=mail_from, rcpt_to=rcpt, raw=raw)


def check(condition: Any, message: MessageFacts | None = None) -> bool:
    return matches(parse(condition), message or facts())


def test_facts_from_raw_reads_headers_only() -> None:
    f = facts()
    assert f.size == len(RAW)
    assert f.headers["x-campaign"] == "Spring Sale"  # unfolded, first occurrence
    assert f.headers["X-CAMPAIGN"] == "Spring Sale"  # case-insensitive names
    assert f.headers["subject"] == "Spécial offer"  # RFC 2047 decoded
    assert "x-not-a-header" not in f.headers
    assert f.rcpt_to == ("bob@gmail.com", "carol@mail.example.org")


def test_facts_from_garbage_never_raise() -> None:
    for raw in (b"", b"no headers at all", b"\xff\xfe: \x00\r\n\r\n", b"Subject: =?bad?x?zz?=\r\n\r\n"):
        f = MessageFacts.from_raw(mail_from="", rcpt_to=("a@b.example",), raw=raw)
        assert f.size == len(raw)


def test_facts_accept_a_plain_dict_of_headers() -> None:
    f = MessageFacts(mail_from="a@b.example", rcpt_to=["x@y.example"], headers={"X-Tag": "v"}, size=10)
    assert f.rcpt_to == ("x@y.example",)
    assert check({"header": {"name": "x-tag", "equals": "V"}}, f)


def test_empty_matches_everything() -> None:
    assert check({})
    assert check({"all": []})


@pytest.mark.parametrize(("condition", "expected"), [
    ({"recipient_domain": "gmail.com"}, True),
    ({"recipient_domain": "GMAIL.COM."}, True),
    ({"recipient_domain": "example.org"}, False),
    ({"recipient_domain": {"suffix": "example.org"}}, True),
    ({"recipient_domain": {"suffix": "ample.org"}}, False),  # label boundary
    ({"recipient_domain": {"in": ["yahoo.com", "gmail.com"]}}, True),
    ({"recipient_domain": {"glob": "mail.*.org"}}, True),
    ({"every_recipient_domain": "gmail.com"}, False),
    ({"every_recipient_domain": {"glob": "*"}}, True),
    ({"sender_domain": "example.com"}, True),
    ({"sender_domain": {"suffix": "com"}}, True),
    ({"sender": "alice@example.com"}, True),
    ({"sender": {"glob": "alice@*"}}, True),
    ({"sender": {"in": ["bob@example.com"]}}, False),
    ({"header": {"name": "X-Campaign", "equals": "spring sale"}}, True),
    ({"header": {"name": "x-campaign", "contains": "SALE"}}, True),
    ({"header": {"name": "Subject", "contains": "spécial"}}, True),
    ({"header": {"name": "Subject", "glob": "*offer"}}, True),
    ({"header": {"name": "X-Campaign", "in": ["autumn", "spring sale"]}}, True),
    ({"header": {"name": "X-Missing", "equals": ""}}, False),
    ({"header": {"name": "X-Missing", "exists": False}}, True),
    ({"header": {"name": "X-Campaign", "exists": True}}, True),
    ({"size": {"greater_than": 10}}, True),
    ({"size": {"less_than": 10}}, False),
    ({"size": {"greater_than": 10, "less_than": 100000}}, True),
    ({"any": [{"sender": "x@y.example"}, {"recipient_domain": "gmail.com"}]}, True),
    ({"all": [{"sender": "x@y.example"}, {"recipient_domain": "gmail.com"}]}, False),
    ({"not": {"recipient_domain": "gmail.com"}}, False),
    ({"not": {"not": {}}}, True),
])
def test_each_leaf_and_combinator(condition: dict, expected: bool) -> None:
    assert check(condition) is expected


def test_recipient_domain_with_several_recipients_means_any_every_means_all() -> None:
    both_gmail = facts(("a@gmail.com", "b@Gmail.com"))
    mixed = facts(("a@gmail.com", "b@example.org"))
    assert check({"recipient_domain": "gmail.com"}, mixed)
    assert not check({"every_recipient_domain": "gmail.com"}, mixed)
    assert check({"every_recipient_domain": "gmail.com"}, both_gmail)
    assert not check({"every_recipient_domain": "gmail.com"}, facts(()))


def test_size_bounds_are_strict() -> None:
    f = MessageFacts(mail_from="", rcpt_to=("a@b.example",), size=100)
    assert not check({"size": {"greater_than": 100}}, f)
    assert check({"size": {"greater_than": 99}}, f)
    assert not check({"size": {"less_than": 100}}, f)
    assert check({"size": {"less_than": 101}}, f)


def test_null_sender() -> None:
    f = facts(mail_from="")
    assert not check({"sender_domain": {"suffix": "com"}}, f)
    assert check({"not": {"sender": {"glob": "*@*"}}}, f)


@pytest.mark.parametrize(("data", "path", "words"), [
    ([], "$", "expected a condition object"),
    ({"recipient_domain": "a.example", "sender": "b@c.example"}, "$", "one key per condition"),
    ({"size_over": 5}, "$", "unknown condition 'size_over'"),
    ({"all": "x"}, "$.all", "expected a list of conditions"),
    ({"any": []}, "$.any", "at least one"),
    ({"all": [{}, {"any": [{"recipient_domain": 5}]}]}, "$.all[1].any[0].recipient_domain", "expected a string or an object"),
    ({"recipient_domain": "bad_domain.example"}, "$.recipient_domain", "not a domain name"),
    ({"recipient_domain": {"contains": "x"}}, "$.recipient_domain", "unknown operator 'contains'"),
    ({"recipient_domain": {"equals": "a.example", "in": []}}, "$.recipient_domain", "expected a string or an object"),
    ({"recipient_domain": {"in": []}}, "$.recipient_domain.in", "non-empty list"),
    ({"recipient_domain": {"in": ["a.example", 3]}}, "$.recipient_domain.in[1]", "expected a domain name"),
    ({"recipient_domain": {"glob": "a b"}}, "$.recipient_domain.glob", "domain pattern"),
    ({"sender": "no-at-sign"}, "$.sender", "not an address"),
    ({"header": "X-Campaign"}, "$.header", "expected an object"),
    ({"header": {"equals": "x"}}, "$.header.name", "header name"),
    ({"header": {"name": "X:Y", "equals": "x"}}, "$.header.name", "header name"),
    ({"header": {"name": "X", "equals": "x", "contains": "y"}}, "$.header", "exactly one operator"),
    ({"header": {"name": "X", "exists": "yes"}}, "$.header.exists", "true or false"),
    ({"header": {"name": "X", "equals": "x" * 999}}, "$.header.equals", "too long"),
    ({"size": 5}, "$.size", "greater_than"),
    ({"size": {"bigger": 5}}, "$.size", "unknown operator 'bigger'"),
    ({"size": {"less_than": True}}, "$.size.less_than", "whole number"),
    ({"not": [{}]}, "$.not", "expected a condition object"),
])
def test_errors_name_the_path(data: Any, path: str, words: str) -> None:
    with pytest.raises(ConditionError) as info:
        parse(data)
    assert info.value.path == path
    assert words in info.value.problem
    assert str(info.value).startswith(path + ": ")


def test_root_is_configurable() -> None:
    with pytest.raises(ConditionError, match=r"^conditions\.any: "):
        parse({"any": []}, root="conditions")


def test_depth_node_and_list_limits() -> None:
    nested: dict = {}
    for _ in range(conditions.MAX_DEPTH):
        nested = {"not": nested}
    parse(nested)
    with pytest.raises(ConditionError, match="nested too deeply"):
        parse({"not": nested})
    with pytest.raises(ConditionError, match="too many conditions"):
        parse({"all": [{}] * conditions.MAX_NODES})
    parse({"all": [{}] * (conditions.MAX_NODES - 1)})
    with pytest.raises(ConditionError, match="too many items"):
        parse({"recipient_domain": {"in": [f"d{i}.example" for i in range(conditions.MAX_LIST + 1)]}})


def test_parsed_conditions_are_frozen_values() -> None:
    a = parse({"all": [{"recipient_domain": "A.example"}, {"size": {"less_than": 5}}]})
    b = parse({"all": [{"recipient_domain": "a.example"}, {"size": {"less_than": 5}}]})
    assert a == b and hash(a) == hash(b)
