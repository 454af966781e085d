"""The handshake's decisions and messages, without sockets."""

from __future__ import annotations

import pytest

from beamrl.errors import NodeDown
from beamrl.transport import PeerInfo
from beamrl.transport.framing import PROTOCOL_VERSION, unpack_control
from beamrl.transport.handshake import (
    Known,
    announce,
    dial_candidates,
    hello,
    judge_hello,
    judge_welcome,
    parse_info,
    parse_peers,
    reject,
    wait_after_reject,
    welcome,
)


def _never_asked() -> bool:
    raise AssertionError("the old path was probed although the decision did not need it")


def _judge(me: str, claimant: str, old: Known | None, **kw: object) -> str | None:
    kw.setdefault("dialling_to_it", False)
    kw.setdefault("key_matches", None)
    kw.setdefault("old_path_gone", _never_asked)
    return judge_hello(me, PeerInfo(claimant, 7, "tcp://127.0.0.1:1"), old, **kw)  # type: ignore[arg-type]


def test_a_new_peer_is_welcomed() -> None:
    assert _judge("a", "b", None) is None


def test_a_hello_with_our_own_name_is_refused() -> None:
    assert _judge("a", "a", None) == "that is the name of the node you dialled"


def test_crossed_dials_the_smaller_name_wins() -> None:
    # a < b: a's own dial to b carries the pair, so b's hello to a is refused
    assert _judge("a", "b", None, dialling_to_it=True) == "simultaneous"
    # b > a: a's hello to b is accepted even while b dials a
    assert _judge("b", "a", None, dialling_to_it=True) is None


def test_a_second_path_for_a_pair_we_dialled_is_a_duplicate() -> None:
    assert _judge("a", "b", Known(creation=7, dialled_by_us=True)) == "duplicate"


def test_without_curve_a_live_name_cannot_be_taken_over() -> None:
    old = Known(creation=7, dialled_by_us=False)
    assert _judge("a", "b", old, old_path_gone=lambda: False).startswith("node 'b' is already connected")  # type: ignore[union-attr]
    assert _judge("a", "b", old, old_path_gone=lambda: True) is None  # its old connection is gone
    restarted = Known(creation=6, dialled_by_us=True)  # reached over our DEALER: not probed
    assert _judge("a", "b", restarted).startswith("node 'b' is already connected")  # type: ignore[union-attr]


def test_with_curve_the_key_decides() -> None:
    assert _judge("a", "b", None, key_matches=False) == "the CURVE key of this connection is not b.key"
    assert _judge("a", "b", Known(creation=6, dialled_by_us=False), key_matches=True) is None


def test_what_a_welcome_means() -> None:
    info = PeerInfo("b", 7, None)
    assert judge_welcome("a", info, "c", None) == "mismatch"
    assert judge_welcome("a", info, "b", None) == "up"
    assert judge_welcome("a", info, None, Known(6, True)) == "up"  # a new incarnation
    assert judge_welcome("a", info, "b", Known(7, False)) == "switch"  # a < b: our dial wins
    assert judge_welcome("c", info, "b", Known(7, False)) == "keep"
    assert judge_welcome("a", info, "b", Known(7, True)) == "keep"


def test_after_a_refusal_wait_only_for_a_path_that_exists() -> None:
    assert wait_after_reject("simultaneous", "b", lambda n: False)
    assert not wait_after_reject("simultaneous", None, lambda n: True)
    assert wait_after_reject("duplicate", "b", lambda n: n == "b")
    assert not wait_after_reject("duplicate", "b", lambda n: False)
    assert not wait_after_reject("bad hello or protocol version", "b", lambda n: True)


def test_messages_round_trip_and_malformed_ones_are_none() -> None:
    msg = unpack_control(hello("a", 3, "tcp://127.0.0.1:5", False))
    assert msg is not None
    assert parse_info(msg) == PeerInfo("a", 3, "tcp://127.0.0.1:5", False)
    msg = unpack_control(welcome("b", 4, None, True, [["c", "tcp://x:1"]]))
    assert msg is not None
    assert parse_info(msg) == PeerInfo("b", 4, None, True)
    assert parse_peers(msg["peers"]) == [("c", "tcp://x:1")]
    assert unpack_control(reject("b", "why")) == {"t": "reject", "name": "b", "reason": "why"}
    good = {"v": PROTOCOL_VERSION, "name": "a", "creation": 1, "address": None}
    assert parse_info(good) is not None
    for bad in ({"v": 1}, {"name": ""}, {"name": "x" * 256}, {"creation": "1"}, {"address": 5}, {"hidden": 1}):
        assert parse_info({**good, **bad}) is None
    assert parse_peers([["a", "x"], ["b"], [1, "y"], "z"]) == [("a", "x")]
    assert parse_peers("nope") == []
    assert unpack_control(b"\xc1") is None
    assert unpack_control(b"\x80") is None  # a map without "t"


def test_a_newcomer_is_told_the_reachable_visible_peers() -> None:
    peers = [PeerInfo("b", 1, "tcp://b"), PeerInfo("c", 1, None), PeerInfo("d", 1, "tcp://d", hidden=True)]
    assert announce([*peers, PeerInfo("e", 1, "tcp://e")], exclude="e") == [["b", "tcp://b"]]


def test_dial_candidates_per_key() -> None:
    assert dial_candidates("a", "tcp://x", None, None, "keys") == [(None, None)]
    trusted = {"a": b"ka", "b": b"kb", "c": b"kc"}
    assert dial_candidates("a", "tcp://x", "b", trusted, "keys") == [("b", b"kb")]
    assert dial_candidates("a", "tcp://x", None, trusted, "keys") == [("b", b"kb"), ("c", b"kc")]
    with pytest.raises(NodeDown, match=r"copy its z\.key into keys"):
        dial_candidates("a", "tcp://x", "z", trusted, "keys")
    with pytest.raises(NodeDown, match="no trusted public key other than this node's own"):
        dial_candidates("a", "tcp://x", None, {"a": b"ka"}, "keys")
