"""BDAT (RFC 3030 CHUNKING): octet-counted chunks, always consumed to stay in sync."""

from __future__ import annotations

from helpers import EHLO, ENVELOPE, drive, greeted, run

import proto


def test_bdat_single_last_chunk() -> None:
    t = run(ENVELOPE + b"BDAT 12 LAST\r\nhello\r\nworld")
    assert t.body == b"hello\r\nworld"
    assert t.of(proto.EndOfData) == [proto.EndOfData(size=12)]
    assert t.codes == [250, 250, 250, 250]


def test_bdat_multiple_chunks_then_last() -> None:
    t = run(ENVELOPE + b"BDAT 7\r\nhello\r\nBDAT 6\r\nworld\rBDAT 1 LAST\r\n\nQUIT\r\n")
    assert t.body == b"hello\r\nworld\r\n"  # a CRLF may be split across chunks
    kinds = [type(e) for e in t.events[3:]]
    assert kinds == [proto.Data, proto.BdatChunk, proto.Data, proto.BdatChunk, proto.Data, proto.EndOfData, proto.Quit]
    end = t.of(proto.EndOfData)[0]
    assert isinstance(end, proto.EndOfData) and not end.bare_line_endings_seen


def test_bdat_chunk_content_is_not_parsed_as_commands() -> None:
    t = run(ENVELOPE + b"BDAT 21 LAST\r\nQUIT\r\n.\r\nRSET\r\nNOOP\r\n")
    assert t.body == b"QUIT\r\n.\r\nRSET\r\nNOOP\r\n"
    assert t.events[-1] == proto.EndOfData(size=21)


def test_bdat_zero_last() -> None:
    t = run(ENVELOPE + b"BDAT 4\r\nabc\nBDAT 0 LAST\r\n", bare_line_ending_policy="normalize")
    assert t.body == b"abc\r\n"
    assert t.of(proto.EndOfData) == [proto.EndOfData(size=5, bare_line_endings_seen=True)]


def test_bdat_bare_lf_refuses_the_chunk_at_once_under_reject() -> None:
    t = run(ENVELOPE + b"BDAT 4\r\nabc\nBDAT 0 LAST\r\n")
    chunk = t.of(proto.BdatChunk)[0]
    assert isinstance(chunk, proto.BdatChunk) and chunk.refusal is not None and chunk.refusal.code == 550
    assert t.codes[-2:] == [550, 503]


def test_bdat_normalize_policy() -> None:
    t = run(ENVELOPE + b"BDAT 4 LAST\r\nab\nc", bare_line_ending_policy="normalize")
    assert t.body == b"ab\r\nc"


def test_bdat_trailing_bare_cr_at_last() -> None:
    t = run(ENVELOPE + b"BDAT 3 LAST\r\nab\r", bare_line_ending_policy="normalize")
    assert t.body == b"ab\r\n"
    (end,) = t.of(proto.EndOfData)
    assert isinstance(end, proto.EndOfData) and end.bare_line_endings_seen and end.size == 4


def test_bdat_without_transaction_is_consumed_then_503() -> None:
    t = run(EHLO + b"BDAT 12\r\nRSET\r\nRSET\r\nNOOP\r\n")
    assert t.codes == [250, 503, 250]
    assert t.events[-1] == proto.Noop()


def test_bdat_without_recipient_is_consumed_then_503() -> None:
    t = run(EHLO + b"MAIL FROM:<>\r\nBDAT 4 LAST\r\nQUITNOOP\r\n")
    assert t.codes == [250, 250, 503, 250]


def test_bdat_not_offered_is_502() -> None:
    assert run(ENVELOPE + b"BDAT 0 LAST\r\n", extensions=proto.Extensions(chunking=False)).codes[-1] == 502


def test_bdat_bad_syntax_is_501() -> None:
    for line in (b"BDAT", b"BDAT x", b"BDAT 1 NOTLAST", b"BDAT 1 LAST x", b"BDAT -1"):
        assert run(ENVELOPE + line + b"\r\n").codes[-1] == 501, line


def test_bdat_oversize_consumed_and_552_ends_transaction() -> None:
    limits = proto.Limits(max_message_size=5)
    t = run(ENVELOPE + b"BDAT 8\r\n12345678BDAT 2 LAST\r\nxxNOOP\r\n", limits=limits)
    chunk = t.of(proto.BdatChunk)[0]
    assert chunk == proto.BdatChunk(8, proto.Reply(552, "Message exceeds fixed maximum message size", "5.3.4"))
    assert t.codes[-3:] == [552, 503, 250]  # the next chunk has no transaction any more


def test_data_after_bdat_is_503() -> None:
    assert run(ENVELOPE + b"BDAT 1\r\nxDATA\r\n").codes[-2:] == [250, 503]


def test_rcpt_after_bdat_is_503() -> None:
    assert run(ENVELOPE + b"BDAT 1\r\nxRCPT TO:<x@y.example>\r\n").codes[-2:] == [250, 503]


def test_bdat_chunk_refused_by_policy_ends_transaction() -> None:
    conn = greeted()
    t = drive(conn, [ENVELOPE + b"BDAT 1\r\nx"], respond=lambda e, c: (
        proto.Reply(452, "full", "4.3.1") if isinstance(e, proto.BdatChunk)
        else proto.Reply(250, "") if isinstance(e, proto.Ehlo) else proto.Reply(250, "OK")))
    assert t.codes[-1] == 452
    assert conn.transaction is None


def test_bdat_transaction_method_reported() -> None:
    conn = greeted()
    drive(conn, [ENVELOPE + b"BDAT 1\r\nx"])
    assert conn.transaction is not None and conn.transaction.method == "BDAT"
