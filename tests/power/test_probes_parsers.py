"""The probes' parsers and the `probes:` key, without a network: a reply a hostile server sends
(any bytes at all) ends as the probe's own failure, never another exception; a good reply is read
right; a definition's probes are checked at the door."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wingman.engine.probes import a2s, http, minecraft
from wingman.engine.probes.failure import ProbeFailure
from wingman.engine.probes.spec import InvalidProbe, parse_probes


def a2s_info(name: str = "srv", players: int = 3, most: int = 16) -> bytes:
    body = b"\x11" + b"\x00".join(s.encode() for s in (name, "de_dust2", "cstrike", "Counter-Strike")) + b"\x00"
    return a2s.HEADER + b"I" + body + struct.pack("<hBBBccBB", 240, players, most, 0, b"d", b"l", 0, 1) + b"1.0\x00"


def mc_status(doc: object) -> bytes:
    text = json.dumps(doc).encode()
    return minecraft.varint(0) + minecraft.varint(len(text)) + text


# -- good replies are read right ---------------------------------------------------------------


def test_an_a2s_info_reply_is_read():
    assert a2s.parse_reply(a2s_info("Büro", 7, 24)) == a2s.Info("Büro", "de_dust2", 7, 24)


def test_an_a2s_challenge_is_taken_and_sent_back():
    reply = a2s.parse_reply(a2s.HEADER + b"A" + b"\x01\x02\x03\x04")
    assert reply == a2s.Challenge(b"\x01\x02\x03\x04")
    assert a2s.query(reply.token).endswith(b"Source Engine Query\x00\x01\x02\x03\x04")


def test_a_minecraft_status_is_read():
    status = minecraft.parse_status(mc_status({"version": {"name": "1.21"}, "players": {"online": 2, "max": 20}}))
    assert status == minecraft.Status("1.21", 2, 20)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 25565, 2**31 - 1, -1])
def test_varints_round_trip(value):
    assert minecraft.read_varint(minecraft.varint(value)) == (value, len(minecraft.varint(value)))


def test_an_http_status_line_is_read():
    assert http.parse_status_line(b"HTTP/1.1 204 No Content\r\n") == 204
    assert http.parse_status_line(b"HTTP/1.0 302\r\n") == 302


# -- garbage is the probe's failure, and only that ----------------------------------------------

REFUSED = {
    "empty": b"",
    "no header": b"hello world",
    "cut string": a2s.HEADER + b"I\x11abc",
    "cut counts": a2s_info()[:-12],
    "split packet": b"\xfe\xff\xff\xff" + b"\x00" * 20,
    "short challenge": a2s.HEADER + b"A\x01",
    "unknown type": a2s.HEADER + b"Z" + b"\x00" * 30,
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_a2s_reply_is_a_probe_failure(data):
    with pytest.raises(ProbeFailure):
        a2s.parse_reply(data)


@given(st.binary(max_size=2048))
def test_any_bytes_as_an_a2s_reply_are_read_or_refused(data):
    try:
        a2s.parse_reply(data)
    except ProbeFailure:
        pass


@given(st.binary(max_size=64))
def test_any_bytes_after_an_a2s_header_are_read_or_refused(data):
    try:
        a2s.parse_reply(a2s.HEADER + data)
    except ProbeFailure:
        pass


@given(st.binary(max_size=2048))
def test_any_bytes_as_a_minecraft_status_are_read_or_refused(data):
    try:
        minecraft.parse_status(data)
    except ProbeFailure:
        pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
    )
)
def test_any_json_as_a_minecraft_status_is_read_or_refused(doc):
    try:
        minecraft.parse_status(mc_status(doc))
    except ProbeFailure:
        pass


def test_a_deeply_nested_status_is_refused_not_a_recursion_error():
    with pytest.raises(ProbeFailure):
        minecraft.parse_status(mc_status(None)[:2] + b"")  # cut short
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ProbeFailure):
        minecraft.parse_status(minecraft.varint(0) + minecraft.varint(len(deep)) + deep)


@given(st.binary(max_size=300))
def test_any_bytes_as_an_http_status_line_are_read_or_refused(data):
    try:
        assert 100 <= http.parse_status_line(data) <= 599
    except ProbeFailure:
        pass


# -- the `probes:` key ---------------------------------------------------------------------------


def test_a_port_left_out_is_the_default_allocations():
    probes = parse_probes({"readiness": {"type": "a2s"}, "liveness": {"type": "tcp", "failure_threshold": 3}}, 27015)
    assert probes.readiness is not None and probes.readiness.port == 27015
    assert probes.liveness is not None and probes.liveness.port == 27015 and probes.liveness.interval == 5


BAD = {
    "unknown kind": ({"readiness": {"type": "icmp", "port": 1}}, "probes.readiness.type"),
    "port out of range": ({"readiness": {"type": "tcp", "port": 65536}}, "probes.readiness.port"),
    "port zero": ({"liveness": {"type": "tcp", "port": 0, "failure_threshold": 1}}, "probes.liveness.port"),
    "liveness without threshold": ({"liveness": {"type": "tcp", "port": 80}}, "probes.liveness.failure_threshold"),
    "liveness on the done line": ({"liveness": {"type": "done_line", "failure_threshold": 2}}, "done_line"),
    "no port anywhere": ({"readiness": {"type": "tcp"}}, "probes.readiness.port"),
    "negative interval": ({"readiness": {"type": "tcp", "port": 1, "interval": -1}}, "probes.readiness.interval"),
    "misspelt key": ({"liveness": {"type": "tcp", "port": 1, "failure_treshold": 2}}, "failure_treshold"),
    "not an object": ([], "probes"),
}


@pytest.mark.parametrize(("doc", "field"), BAD.values(), ids=BAD.keys())
def test_a_bad_probe_is_refused_naming_its_field(doc, field):
    with pytest.raises(InvalidProbe, match=field.replace(".", r"\.")):
        parse_probes(doc, 0)
