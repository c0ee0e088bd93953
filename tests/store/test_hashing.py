"""The event hash is part of the audit contract: the fast canonical JSON (orjson where it writes
the same bytes) must give exactly the standard library's bytes, on any event."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wingman.engine.store.hashing import (
    canonical_json,
    canonical_time,
    event_hash,
    hash_of_parts,
    json_loads,
    standard_event_hash,
)


def standard(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
ANY_TEXT = st.text(max_size=12)  # lone surrogates too: the standard path keeps them as they are
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
    | ANY_TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT | ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=2000)
@given(VALUES)
def test_canonical_json_is_the_standard_librarys_bytes(value):
    assert canonical_json(value) == standard(value)


@settings(max_examples=500)
@given(
    data=st.dictionaries(TEXT, VALUES, max_size=6),
    metadata=st.dictionaries(TEXT, VALUES, max_size=6),
    stream=TEXT,
    kind=TEXT,
    version=st.integers(min_value=1, max_value=2**40),
    micros=st.integers(min_value=0, max_value=10**15),
)
def test_event_hash_is_the_standard_definition(data, metadata, stream, kind, version, micros):
    when = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    fields = dict(
        stream_id=stream,
        version=version,
        event_id=str(uuid.uuid4()),
        type=kind,
        data=data,
        metadata=metadata,
        recorded_at=when,
        prev_hash="ab" * 32,
    )
    try:
        expected = standard_event_hash(**fields)
    except UnicodeEncodeError:  # a lone surrogate: UTF-8 cannot hold it, and both say so
        with pytest.raises(UnicodeEncodeError):
            event_hash(**fields)
        return
    assert event_hash(**fields) == expected
    parts = dict(
        fields, data_json=canonical_json(data), metadata_json=canonical_json(metadata), recorded_at=canonical_time(when)
    )
    del parts["data"], parts["metadata"]
    assert hash_of_parts(**parts) == expected


def test_known_tricky_values():
    cases = [
        {"motd": "héllo wörld ✓ 日本語 😀", "ctl": '\x00\x1f\x7f\u2028\u2029"\\/\b\f\n\r\t'},
        {"floats": [0.1, 1.0, -0.0, 1e16, 1e-5, 1.5e-7, 123456789.125, 5e-324, 1.7976931348623157e308]},
        {"nan": math.nan, "inf": math.inf, "-inf": -math.inf},
        {"big": 2**64, "bigger": -(2**63) - 1, "edge": [2**63 - 1, -(2**63), 2**64 - 1]},
        {"surrogate": "\ud800", "tuple": (1, 2), "nested": {"b": {"z": 1, "a": [{"y": None, "x": True}]}}},
        {"é": 1, "e": 2, "\U0001f600": 3, "Z": 4},  # key order by code point
    ]
    for value in cases:
        assert canonical_json(value) == standard(value), value
    when = datetime(2026, 11, 28, 3, 12, tzinfo=UTC)
    for data in cases:
        fields = dict(
            stream_id="s",
            version=1,
            event_id="e",
            type="t",
            data=data,
            metadata={"actor": "ü"},
            recorded_at=when,
            prev_hash="0" * 64,
        )
        if "surrogate" in data:  # text UTF-8 cannot hold: both refuse it alike (the store says StoreRefused)
            with pytest.raises(UnicodeEncodeError):
                standard_event_hash(**fields)
            with pytest.raises(UnicodeEncodeError):
                event_hash(**fields)
            continue
        assert event_hash(**fields) == standard_event_hash(**fields)


@settings(max_examples=1000)
@given(VALUES)
def test_json_loads_reads_what_the_standard_library_reads(value):
    """The fast reader gives the very values json.loads gives (exact big integers, NaN, surrogates)."""
    text = standard(value)
    got, expected = json_loads(text), json.loads(text)
    assert standard(got) == standard(expected)
    assert repr(got) == repr(expected)  # the same types too: 10**20 stays an int, not a float


def test_json_loads_keeps_big_integers_exact():
    for text in [
        '{"n": 123456789012345678901234567890}',
        "[-9223372036854775809, 18446744073709551616]",
        '{"x": NaN, "y": 1e400}',
        '"\\ud800"',
    ]:
        assert repr(json_loads(text)) == repr(json.loads(text))


def test_new_ids_are_time_ordered_uuids():
    """Event and operation ids: version 7 UUIDs (time first, so the log's indexes grow at one end),
    spelled as uuid.UUID spells them, never repeated."""
    import time as clock

    from wingman.engine.events import new_id

    before = int(clock.time() * 1000)
    ids = [new_id() for _ in range(5000)]
    after = int(clock.time() * 1000)
    assert len(set(ids)) == len(ids)
    for text in ids:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= u.int >> 80 <= after
    stamps = [uuid.UUID(t).int >> 80 for t in ids]
    assert stamps == sorted(stamps)


def test_json_loads_agrees_at_the_edges():
    """Long integers next to non-ASCII text or a lone surrogate, in text and bytes, on both sides
    of 64 bits; texts the fast parser refuses and the standard library reads (or refuses alike)."""
    cases = [
        '{"n": 18446744073709551616}',
        '{"é": 99999999999999999999}',
        '["\\ud800", 100000000000000000000]',
        '{"s": "\ud800", "n": -9223372036854775809}',
        "[999999999999999999, -999999999999999999]",
        '{"n": 1234567890123456789}',
        '{"txt": "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠"}',
        "[1.0000000000000000000001]",
        "[" * 300 + "]" * 300,
        '{"a": 1, "b": 2, "a": 3}',
        "[1e400, -1e400, NaN, 1e-400, -0.0, -0]",
    ]
    for text in ["9" * 5000, '{"a": 1} x', '"a\x01b"', "[1,]", "01", b'"\xff"']:
        with pytest.raises(ValueError) as expected:
            json.loads(text)
        with pytest.raises(type(expected.value)):
            json_loads(text)
    for text in cases:
        expected = json.loads(text)
        assert repr(json_loads(text)) == repr(expected), text
        if "\ud800" not in text:
            assert repr(json_loads(text.encode("utf-8"))) == repr(expected), text
