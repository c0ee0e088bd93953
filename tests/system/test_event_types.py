"""Event types and causes are spelled once (engine.event_types), and everything reads them there:
the event classes, the audit's words and the tables in docs/audit.md."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wingman.engine.audit.describe import _WHAT, CAUSES, describe
from wingman.engine.event_types import DOCS, Cause, EventType, docs_tables, documented
from wingman.engine.events import _REGISTRY, RecordedEvent, event_class

ROOT = Path(__file__).resolve().parents[2]


def test_every_event_type_has_one_class_and_every_class_a_type():
    assert set(_REGISTRY) == set(EventType)
    for t in EventType:
        assert event_class(t) is event_class(t.value) and event_class(t).type is t
    with pytest.raises(KeyError):
        event_class("no.such_type")


def test_members_are_their_strings():
    assert EventType.STATE_CHANGED == "state.changed" and Cause.PROCESS_READY == "process_ready"
    assert (
        json.dumps({"type": EventType.POWER_REQUESTED, "cause": Cause.OPERATOR})
        == '{"type": "power.requested", "cause": "operator"}'
    )
    assert f"{EventType.PROCESS_EXITED}" == "process.exited" and str(Cause.KILLED) == "killed"
    assert EventType("crash.decided") is EventType.CRASH_DECIDED and Cause("delete") is Cause.DELETE


def _sample(schema: dict, defs: dict):
    """A value that fits a field's JSON schema (the first choice of every choice)."""
    if "$ref" in schema:
        return _sample(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return _sample(next(s for s in schema["anyOf"] if s.get("type") != "null"), defs)
    if "enum" in schema or "const" in schema:
        return schema.get("enum", [schema.get("const")])[0]
    kind = schema.get("type")
    if kind == "string":
        return "2026-12-01T00:00:00Z" if schema.get("format") == "date-time" else "x"
    return {
        "integer": 3,
        "number": 2.5,
        "boolean": True,
        "object": {},
        "array": [_sample(schema.get("items", {"type": "string"}), defs)],
    }[kind]


def _example(t: EventType) -> dict:
    schema = event_class(t).model_json_schema()
    data = {name: _sample(field, schema.get("$defs", {})) for name, field in schema["properties"].items()}
    event_class(t).model_validate(data)  # a valid event of its type
    return data


@pytest.mark.parametrize("t", list(EventType), ids=str)
def test_the_audit_has_words_for_every_event_type(t):
    assert t in _WHAT
    ev = RecordedEvent(
        position=1,
        stream_id="s",
        version=1,
        event_id="e",
        type=t.value,
        data=_example(t),
        metadata={"actor": "daemon", "channel": "internal", "cause": Cause.OPERATOR.value},
        recorded_at=datetime.now(UTC),
        prev_hash="0",
        hash="1",
    )
    line = describe(ev)
    assert line.what and t.value not in line.what, line.what  # its words, not its raw type and data
    assert line.why


def test_the_audit_has_words_for_every_cause():
    assert set(CAUSES) == set(Cause)
    for c in Cause:
        assert c.words and CAUSES[c] == c.words
    assert len({c.value for c in Cause}) == len(Cause) and len({t.value for t in EventType}) == len(EventType)


def test_the_docs_tables_are_the_enumerations():
    """docs/audit.md lists every event type and cause, with their words, exactly as the code has
    them: after a change, `python -m wingman.engine.event_types --write`."""
    text = DOCS.read_text()
    assert documented(text) == docs_tables(), "run: python -m wingman.engine.event_types --write"
    for t in EventType:
        assert f"| `{t.value}` |" in text
    for c in Cause:
        assert f"| `{c.value}` |" in text


def test_no_event_type_is_spelled_outside_its_enumeration():
    """engine/ and api/ name event types by their members, never as strings."""
    values = {t.value for t in EventType}
    spelled = []
    for path in sorted([*ROOT.glob("engine/**/*.py"), *ROOT.glob("api/**/*.py")]):
        if path == ROOT / "engine" / "event_types.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in values:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not spelled
