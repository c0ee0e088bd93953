"""The per-stream hash chain: each event's hash covers its canonical form and the previous hash.

The canonical form is `json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
of the event's seven fields, UTF-8 encoded; that exact byte string is part of the audit contract
(third-party verifiers recompute it). `canonical_json` produces those bytes faster with orjson
whenever orjson is known to write the same bytes as the standard library: values made only of
dicts with text keys, lists, text, bools, None and 64-bit integers (floats, which orjson writes
differently in exponent form, and anything unusual take the standard library's path).
tests/store/test_hashing.py holds the two spellings to each other.

The same hash, recomputed from a row's contents, is the row's leaf in the Merkle tree over the
whole log (engine.checkpoints.tree): see `leaf_of`."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from pydantic_core import from_json

if TYPE_CHECKING:  # for its type only: the hash reads the fields, never the model
    from wingman.engine.events import RecordedEvent

GENESIS = "0" * 64

_STANDARD = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_INT64 = (-(2**63), 2**64 - 1)  # orjson raises outside this range; the standard path takes over
_SCALARS = (str, bool, type(None))


def _orjson_safe(value: Any) -> bool:
    """Whether orjson writes exactly the standard library's bytes for this value (see module doc)."""
    if type(value) is dict:  # most events: a flat object of text, flags and small numbers
        for k, v in value.items():
            t = type(v)
            if type(k) is not str or (t not in _SCALARS and not (t is int and _INT64[0] <= v <= _INT64[1])):
                break
        else:
            return True
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            for k in v:
                if type(k) is not str:
                    return False
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
        elif t is int:
            if not _INT64[0] <= v <= _INT64[1]:
                return False
        elif t not in _SCALARS:  # floats, tuples, subclasses of anything: the standard path
            return False
    return True


def canonical_json(value: Any) -> str:
    """The canonical JSON text of a value: sorted keys, no spaces, non-ASCII as is."""
    if _orjson_safe(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError):  # e.g. a lone surrogate: let json say what it says
            pass
    return _STANDARD.encode(value)


# Reading JSON exactly as `json.loads` does, fast: pydantic-core's parser (jiter, already here
# with pydantic) keeps integers of any length exact, where orjson reads one beyond 64 bits as a
# float and needed a scan of every text for long digit runs before it could be trusted (the scan
# cost half as much as the parse). Where jiter refuses a text that the standard library reads
# (a lone surrogate, nesting deeper than 200) or refuses it with its own error, the
# standard library reads it and says what it says. tests/store/test_hashing.py holds the two readers
# to each other.
def json_loads(text: str | bytes) -> Any:
    """JSON text to Python values exactly as `json.loads` gives them (and its errors)."""
    try:
        return from_json(text)
    except (ValueError, TypeError):  # TypeError: a str holding a lone surrogate, or not text at all
        return json.loads(text)


def _text(value: Any) -> str:
    """`canonical_json` of a field that is nearly always plain text (the walk would cost more)."""
    if type(value) is str:
        try:
            return orjson.dumps(value).decode("utf-8")
        except orjson.JSONEncodeError:
            pass
    return canonical_json(value)


def canonical_time(ts: datetime | str) -> str:
    """One spelling of a timestamp, whatever the database hands back (naive UTC on SQLite). A
    time that does not read (edited by hand) is kept as its text, so its hash still differs."""
    if isinstance(ts, str):
        return ts
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hash_of_parts(
    *,
    stream_id: str,
    version: int,
    event_id: str,
    type: str,
    data_json: str,
    metadata_json: str,
    recorded_at: str,
    prev_hash: str,
) -> str:
    """The event hash from its data and metadata already in canonical JSON (the writer stores
    those same texts) and its time already spelled by `canonical_time`.

    The document's keys in sorted order are data, event_id, metadata, recorded_at, stream_id,
    type, version: with compact separators the canonical text of the whole document is these
    parts joined, byte for byte."""
    canonical = (
        f'{{"data":{data_json},"event_id":{_text(event_id)},"metadata":{metadata_json},'
        f'"recorded_at":{_text(recorded_at)},"stream_id":{_text(stream_id)},'
        f'"type":{_text(type)},"version":{version if version.__class__ is int else canonical_json(version)}}}'
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def event_hash(
    *,
    stream_id: str,
    version: int,
    event_id: str,
    type: str,
    data: dict[str, Any],
    metadata: dict[str, Any],
    recorded_at: datetime,
    prev_hash: str,
) -> str:
    return hash_of_parts(
        stream_id=stream_id,
        version=version,
        event_id=event_id,
        type=type,
        data_json=canonical_json(data),
        metadata_json=canonical_json(metadata),
        recorded_at=canonical_time(recorded_at),
        prev_hash=prev_hash,
    )


def standard_event_hash(
    *,
    stream_id: str,
    version: int,
    event_id: str,
    type: str,
    data: Any,
    metadata: Any,
    recorded_at: datetime | str,
    prev_hash: str,
) -> str:
    """The definition of the hash, spelled with the standard library alone: what `event_hash`
    must always equal (the tests compare them), and what a third-party verifier implements."""
    canonical = json.dumps(
        {
            "stream_id": stream_id,
            "version": version,
            "event_id": event_id,
            "type": type,
            "data": data,
            "metadata": metadata,
            "recorded_at": canonical_time(recorded_at),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def leaf_of(ev: RecordedEvent) -> bytes:
    """The Merkle leaf of a row: its event hash recomputed from what the row holds now (its
    contents and its prev_hash), as 32 bytes. Never the stored `hash` column, which an editor of
    the database can rewrite along with the contents. Works on a row the lenient reader returned
    with unreadable JSON or time: that row simply gets a leaf nobody signed."""
    return bytes.fromhex(
        event_hash(
            stream_id=ev.stream_id,
            version=ev.version,
            event_id=ev.event_id,
            type=ev.type,
            data=ev.data,
            metadata=ev.metadata,
            recorded_at=ev.recorded_at,
            prev_hash=str(ev.prev_hash),
        )
    )
