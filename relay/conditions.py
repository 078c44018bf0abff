"""The routing-rule condition language: parse once, match many times.

A routing rule's ``conditions`` is a JSON object. The API validates it with ``parse``
when a rule is written; the delivery worker parses the stored rules and calls
``matches`` for each message. Both sides use this module, so what the API accepts is
exactly what the worker understands.

Grammar (every object has exactly one key, except ``{}``)::

    condition := {}                               matches every message
               | {"all": [condition, ...]}        every item matches ([] matches)
               | {"any": [condition, ...]}        at least one item matches (non-empty)
               | {"not": condition}
               | {"recipient_domain": domain_test}        some recipient's domain passes
               | {"every_recipient_domain": domain_test}  every recipient's domain passes
               | {"sender_domain": domain_test}           the MAIL FROM domain
               | {"sender": address_test}                 the MAIL FROM address
               | {"header": {"name": NAME, <header operator>: VALUE}}
               | {"size": {"greater_than": N, "less_than": N}}  either or both, in bytes

    domain_test  := DOMAIN | {"equals": DOMAIN} | {"in": [DOMAIN, ...]}
                  | {"suffix": DOMAIN}   the domain itself or any subdomain of it
                  | {"glob": PATTERN}    shell-style: * and ? (e.g. "mail*.example.*")
    address_test := ADDRESS | {"equals": ADDRESS} | {"in": [ADDRESS, ...]} | {"glob": PATTERN}
    header operator := "equals": TEXT | "in": [TEXT, ...] | "contains": TEXT
                     | "glob": PATTERN | "exists": true|false

A bare string is short for ``{"equals": string}``. Every text comparison ignores case.

Messages with several recipients: a message is routed as a whole, so
``recipient_domain`` passes when **at least one** recipient's domain passes the test
(a message to ``a@gmail.com`` and ``b@example.org`` matches
``{"recipient_domain": "gmail.com"}``), and ``every_recipient_domain`` passes only when
**all** of them do (that message does not match
``{"every_recipient_domain": "gmail.com"}``).

Headers: names are case-insensitive; when a header appears several times, the first
occurrence counts; values are compared after RFC 2047 decoding and unfolding, with
surrounding white space stripped. A missing header fails every operator except
``"exists": false``. A null reverse path (``MAIL FROM:<>``) has the empty address and
the empty domain.

Limits keep a rule cheap to evaluate: at most ``MAX_DEPTH`` levels of nesting,
``MAX_NODES`` conditions in a rule and ``MAX_LIST`` items in a list. ``parse`` raises
``ConditionError`` whose message starts with the JSON path of the fault, e.g.
``$.all[1].header.name: expected a header name such as "X-Campaign"``.
"""

from __future__ import annotations

import email.errors
import email.header
import email.parser
import email.policy
import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from .jsonvalue import JSON
from .syntax import is_host_name

__all__ = [
    "All",
    "AnyOf",
    "Condition",
    "ConditionError",
    "Header",
    "MessageFacts",
    "Not",
    "RecipientDomain",
    "Sender",
    "SenderDomain",
    "Size",
    "TextTest",
    "json_kind",
    "matches",
    "parse",
]

#: Nesting levels (``all``/``any``/``not``) below the root.
MAX_DEPTH = 8
#: Conditions (leaves and combinators) in one rule.
MAX_NODES = 64
#: Items in an ``all``/``any``/``in`` list.
MAX_LIST = 100
#: RFC 5321 §4.5.3.1.2: a domain is at most 255 octets; §4.5.3.1.3: a path 256.
MAX_DOMAIN = 255
MAX_ADDRESS = 256
#: RFC 5322 §2.1.1: a header line is at most 998 characters.
MAX_TEXT = 998
#: Header bytes ``MessageFacts.from_raw`` parses; the rest of a huge header block is ignored.
MAX_HEADER_BYTES = 256 * 1024


class ConditionError(ValueError):
    """The conditions are not valid; the message is ``"<JSON path>: <what is wrong>"``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# ---------------------------------------------------------------- the parsed form


@attrs.frozen
class TextTest:
    """One comparison on a text value; every value is stored lower-cased."""

    #: ``equals``, ``in``, ``suffix``, ``glob``, ``contains`` or ``exists``.
    operator: str
    values: tuple[str, ...] = ()
    #: Only for ``exists``.
    expected: bool = True

    def check(self, value: str | None) -> bool:
        if self.operator == "exists":
            return (value is not None) is self.expected
        if value is None:
            return False
        value = value.lower()
        if self.operator in ("equals", "in"):
            return value in self.values
        if self.operator == "suffix":
            base = self.values[0]
            return value == base or value.endswith("." + base)
        if self.operator == "glob":
            return fnmatch.fnmatchcase(value, self.values[0])
        return self.values[0] in value  # contains


@attrs.frozen
class All:
    items: tuple[Condition, ...]


@attrs.frozen
class AnyOf:
    items: tuple[Condition, ...]


@attrs.frozen
class Not:
    item: Condition


@attrs.frozen
class RecipientDomain:
    test: TextTest
    #: False: some recipient passes (``recipient_domain``); True: all do.
    every: bool = False


@attrs.frozen
class SenderDomain:
    test: TextTest


@attrs.frozen
class Sender:
    test: TextTest


@attrs.frozen
class Header:
    #: Lower-cased.
    name: str
    test: TextTest


@attrs.frozen
class Size:
    greater_than: int | None = None
    less_than: int | None = None


Condition = All | AnyOf | Not | RecipientDomain | SenderDomain | Sender | Header | Size


# ---------------------------------------------------------------- facts


class _Headers(Mapping[str, str]):
    """A read-only, case-insensitive view of the first value of each header."""

    def __init__(self, pairs: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = {}
        for name, value in (pairs or {}).items():
            self._data.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._data[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == {
            k.lower(): v for k, v in other.items()
        }

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items())))

    def __repr__(self) -> str:
        return f"Headers({self._data!r})"


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _headers(value: Mapping[str, str]) -> _Headers:
    return value if isinstance(value, _Headers) else _Headers(value)


@attrs.frozen
class MessageFacts:
    """What a condition can look at: the envelope, the first value of each header, the size."""

    mail_from: str
    rcpt_to: tuple[str, ...] = attrs.field(converter=_strings)
    #: Case-insensitive names (a plain dict given here is wrapped).
    headers: Mapping[str, str] = attrs.field(converter=_headers, factory=dict)
    size: int = 0

    @classmethod
    def from_raw(cls, *, mail_from: str, rcpt_to: tuple[str, ...] | list[str], raw: bytes) -> MessageFacts:
        """Build facts from a stored message; only the header block is parsed.

        Malformed headers never raise: a value that cannot be decoded is used as the
        raw text, and anything after ``MAX_HEADER_BYTES`` is ignored.
        """
        head = raw[:MAX_HEADER_BYTES]
        for separator in (b"\r\n\r\n", b"\n\n"):
            end = head.find(separator)
            if end >= 0:
                head = head[: end + len(separator)]
                break
        parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
        pairs: dict[str, str] = {}
        for name, value in parsed.items():
            if name.lower() not in pairs:
                pairs[name.lower()] = " ".join(_decode(value).split())
        return cls(mail_from=mail_from, rcpt_to=tuple(rcpt_to), headers=pairs, size=len(raw))


def _decode(value: Any) -> str:
    """RFC 2047 decoding that never raises: an undecodable value stays as it came."""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return str(value)


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".") if "@" in address else ""


# ---------------------------------------------------------------- matching


def matches(condition: Condition, facts: MessageFacts) -> bool:
    """Whether ``facts`` satisfy ``condition`` (a value from ``parse``)."""
    match condition:
        case All(items):
            return all(matches(item, facts) for item in items)
        case AnyOf(items):
            return any(matches(item, facts) for item in items)
        case Not(item):
            return not matches(item, facts)
        case RecipientDomain(test, every):
            domains = [_domain_of(r) for r in facts.rcpt_to]
            if every:
                return bool(domains) and all(test.check(d) for d in domains)
            return any(test.check(d) for d in domains)
        case SenderDomain(test):
            return test.check(_domain_of(facts.mail_from))
        case Sender(test):
            return test.check(facts.mail_from)
        case Header(name, test):
            return test.check(facts.headers.get(name))
        case Size(greater_than, less_than):
            return (greater_than is None or facts.size > greater_than) and (
                less_than is None or facts.size < less_than
            )
    raise TypeError(f"not a parsed condition: {condition!r}")


# ---------------------------------------------------------------- parsing

#: Checks and normalizes one string of a condition (``_text``, ``_domain``, ``_address``).
TextCheck = Callable[[JSON, str], str]

_LEAVES = (
    "recipient_domain", "every_recipient_domain", "sender_domain", "sender", "header", "size"
)
_KEYS = ("all", "any", "not", *_LEAVES)
_GLOB_DOMAIN = re.compile(r"^[a-z0-9*?.\-]+$")
#: RFC 5322 §3.6.8: a field name is printable ASCII except the colon.
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,76}$")


def json_kind(value: object) -> str:
    """How an error message names the JSON type of ``value`` ("a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def condition(self, data: JSON, path: str, depth: int) -> Condition:
        if not isinstance(data, dict):
            raise ConditionError(path, f"expected a condition object, got {json_kind(data)}")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConditionError(path, f"too many conditions (at most {MAX_NODES} in one rule)")
        if not data:
            return All(())
        if len(data) != 1:
            raise ConditionError(
                path,
                f"one key per condition, got {', '.join(sorted(map(str, data)))};"
                ' combine conditions with {"all": [...]}',
            )
        ((key, value),) = data.items()
        sub = f"{path}.{key}"
        if key in ("all", "any", "not") and depth >= MAX_DEPTH:
            raise ConditionError(sub, f"nested too deeply (at most {MAX_DEPTH} levels)")
        match key:
            case "all" | "any":
                items = self.items(value, sub, depth, allow_empty=key == "all")
                return All(items) if key == "all" else AnyOf(items)
            case "not":
                return Not(self.condition(value, sub, depth + 1))
            case "recipient_domain" | "every_recipient_domain":
                return RecipientDomain(
                    self.text_test(value, sub, _domain, ("equals", "in", "suffix", "glob")),
                    every=key == "every_recipient_domain",
                )
            case "sender_domain":
                return SenderDomain(
                    self.text_test(value, sub, _domain, ("equals", "in", "suffix", "glob"))
                )
            case "sender":
                return Sender(self.text_test(value, sub, _address, ("equals", "in", "glob")))
            case "header":
                return self.header(value, sub)
            case "size":
                return self.size(value, sub)
        raise ConditionError(
            path, f"unknown condition {key!r}; expected one of {', '.join(_KEYS)}"
        )

    def items(
        self, value: JSON, path: str, depth: int, *, allow_empty: bool
    ) -> tuple[Condition, ...]:
        if not isinstance(value, list):
            raise ConditionError(path, f"expected a list of conditions, got {json_kind(value)}")
        if not value and not allow_empty:
            raise ConditionError(path, "expected at least one condition")
        if len(value) > MAX_LIST:
            raise ConditionError(path, f"too many items (at most {MAX_LIST})")
        return tuple(
            self.condition(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)
        )

    def text_test(
        self, value: JSON, path: str, check: TextCheck, operators: tuple[str, ...]
    ) -> TextTest:
        if isinstance(value, str):
            return TextTest("equals", (check(value, path),))
        if not isinstance(value, dict) or len(value) != 1:
            raise ConditionError(
                path,
                f"expected a string or an object with one of {', '.join(operators)}",
            )
        ((operator, operand),) = value.items()
        return self.operand(operator, operand, f"{path}.{operator}", check, operators)

    def operand(
        self, operator: str, operand: JSON, path: str, check: TextCheck, operators: tuple[str, ...]
    ) -> TextTest:
        if operator not in operators:
            parent = path.rpartition(".")[0]
            raise ConditionError(
                parent, f"unknown operator {operator!r}; expected one of {', '.join(operators)}"
            )
        if operator == "exists":
            if not isinstance(operand, bool):
                raise ConditionError(path, f"expected true or false, got {json_kind(operand)}")
            return TextTest("exists", expected=operand)
        if operator == "in":
            if not isinstance(operand, list) or not operand:
                raise ConditionError(path, "expected a non-empty list of strings")
            if len(operand) > MAX_LIST:
                raise ConditionError(path, f"too many items (at most {MAX_LIST})")
            return TextTest(
                "in", tuple(check(item, f"{path}[{i}]") for i, item in enumerate(operand))
            )
        if operator == "glob":
            return TextTest("glob", (_glob(operand, path, check),))
        return TextTest(operator, (check(operand, path),))

    def header(self, value: JSON, path: str) -> Header:
        if not isinstance(value, dict):
            raise ConditionError(
                path, f'expected an object such as {{"name": "X-Campaign", "equals": "spring"}}, got {json_kind(value)}'
            )
        name = value.get("name")
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise ConditionError(
                f"{path}.name", 'expected a header name such as "X-Campaign"'
            )
        rest = {k: v for k, v in value.items() if k != "name"}
        operators = ("equals", "in", "contains", "glob", "exists")
        if len(rest) != 1:
            raise ConditionError(
                path, f"expected exactly one operator besides name: one of {', '.join(operators)}"
            )
        ((operator, operand),) = rest.items()
        return Header(
            name.lower(), self.operand(operator, operand, f"{path}.{operator}", _text, operators)
        )

    def size(self, value: JSON, path: str) -> Size:
        if not isinstance(value, dict) or not value:
            raise ConditionError(
                path, 'expected an object such as {"greater_than": 1000000}'
            )
        bounds: dict[str, int] = {}
        for key, bound in value.items():
            if key not in ("greater_than", "less_than"):
                raise ConditionError(
                    path, f"unknown operator {key!r}; expected greater_than and/or less_than"
                )
            if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
                raise ConditionError(f"{path}.{key}", "expected a whole number of bytes, 0 or more")
            bounds[key] = bound
        return Size(**bounds)


def _text(value: JSON, path: str) -> str:
    if not isinstance(value, str):
        raise ConditionError(path, f"expected a string, got {json_kind(value)}")
    if len(value) > MAX_TEXT:
        raise ConditionError(path, f"too long ({len(value)} characters; at most {MAX_TEXT})")
    return value.lower().strip()


def _domain(value: JSON, path: str) -> str:
    if not isinstance(value, str):
        raise ConditionError(path, f"expected a domain name, got {json_kind(value)}")
    domain = value.lower().rstrip(".")
    if (
        not domain
        or not is_host_name(domain, max_length=MAX_DOMAIN)
    ):
        raise ConditionError(
            path, f"{value[:80]!r} is not a domain name such as example.com (use xn-- for IDN)"
        )
    return domain


def _address(value: JSON, path: str) -> str:
    if not isinstance(value, str):
        raise ConditionError(path, f"expected an address, got {json_kind(value)}")
    local, at, domain = value.rpartition("@")
    if not at or not local or len(value) > MAX_ADDRESS or any(c.isspace() for c in value):
        raise ConditionError(path, f"{value[:80]!r} is not an address such as alice@example.com")
    return f"{local.lower()}@{_domain(domain, path)}"


def _glob(value: JSON, path: str, check: TextCheck) -> str:
    if not isinstance(value, str) or not value:
        raise ConditionError(path, 'expected a pattern such as "*.example.com"')
    pattern = value.lower()
    if len(pattern) > MAX_TEXT:
        raise ConditionError(path, f"too long ({len(pattern)} characters; at most {MAX_TEXT})")
    if check is _domain and not _GLOB_DOMAIN.match(pattern):
        raise ConditionError(
            path, f"{value[:80]!r}: a domain pattern holds only letters, digits, '-', '.', '*' and '?'"
        )
    return pattern


def parse(data: JSON, *, root: str = "$") -> Condition:
    """Check and compile a rule's ``conditions``.

    Args:
        data: the decoded JSON value.
        root: how the path of a fault begins (the API passes ``"conditions"``).

    Raises:
        ConditionError: the message names the JSON path and what is wrong there.
    """
    return _Parser().condition(data, root, 0)
