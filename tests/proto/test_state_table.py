"""The transition tables themselves: complete where they must be, and the server's
effects all implemented (the state machine changes state only through the table)."""

from __future__ import annotations

import proto
from proto import _server, _state
from proto._state import ANY, SERVER_TRANSITIONS, Effect, Sent, Signal

OPEN = [s for s in proto.State if s not in (proto.CLOSING, proto.CLOSED)]


def test_every_server_effect_is_implemented() -> None:
    used = {effect for _, effect in SERVER_TRANSITIONS.values()}
    assert used <= set(_server._EFFECTS)
    assert set(Effect) == set(_server._EFFECTS)


def test_421_row_in_every_open_state_and_none_after() -> None:
    for state in OPEN:
        assert SERVER_TRANSITIONS[(state, Sent(ANY, 421))] == (proto.CLOSING, Effect.CLOSE)
    for state in (proto.CLOSING, proto.CLOSED):
        assert not [key for key in SERVER_TRANSITIONS if key[0] is state]


def test_421_wins_over_the_4xx_rows() -> None:
    assert _state.reply_transition(proto.REPLY, proto.Ehlo("x"), 421, None) == (proto.CLOSING, Effect.CLOSE)
    assert _state.reply_transition(proto.REPLY, proto.Ehlo("x"), 450, None) == (proto.COMMAND, Effect.NONE)


def test_named_code_only_where_a_same_row_exists() -> None:
    refused = proto.Reply(552, "too big", "5.3.4")
    violation = proto.ProtocolViolation(proto.Reply(503, "no", "5.5.1"), "why")
    assert _state.reply_transition(proto.REPLY, violation, 503, 503) == (proto.COMMAND, Effect.AUTH_ENDED)
    assert _state.reply_transition(proto.REPLY, violation, 500, 503) is None
    end = proto.EndOfData(3, refusal=refused)
    assert _state.reply_transition(proto.REPLY, end, 250, 552) is None
    assert _state.reply_transition(proto.REPLY, end, 552, 552) == (proto.COMMAND, Effect.TRANSACTION_ENDED)


def test_signals_have_rows() -> None:
    assert _state.transition(proto.TLS_HANDOFF, Signal.TLS_ESTABLISHED) == (proto.COMMAND, Effect.SESSION_RESET)
    for state in (proto.COMMAND, proto.AUTH, proto.DATA, proto.BDAT):
        assert _state.transition(state, Signal.PEER_CLOSED) == (proto.CLOSED, Effect.READER_DONE)
        assert _state.transition(state, Signal.PEER_BROKE) == (proto.ERROR, Effect.NONE)
    assert _state.transition(proto.COMMAND, Signal.TLS_ESTABLISHED) is None


def test_client_421_row_comes_first() -> None:
    row = _state.lookup(_state.CLIENT_TRANSITIONS, proto.Ehlo("x"), 421)
    assert row == (proto.CLOSING, Effect.CLOSE)
