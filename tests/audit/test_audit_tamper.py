"""Tamper detection on a real SQLite file: each edit made with raw SQL is found at the right event
(stream, version, position) by the engine's verification and by `wingman audit verify`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from tests.support.synthetic_log import append_through_store
from wingman.engine.audit.verify import verify
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.hashing import event_hash

ROOT = Path(__file__).resolve().parents[2]


async def _build(path: Path) -> list[str]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    store = EventStore(engine)
    await store.open()
    ids = await append_through_store(store, 120, servers=2, seed=7)
    await store.close()
    await engine.dispose()
    return ids


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("audit") / "wingman.db"
    ids = asyncio.run(_build(path))
    return path, ids


@pytest.fixture
def db(pristine, tmp_path) -> Path:
    """A fresh copy of the pristine log for each test (an auditor works on copies too)."""
    src, _ = pristine
    dst = tmp_path / "copy.db"
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def rows(path: Path, where: str = "1=1", args=()) -> list[dict]:
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    out = [dict(r) for r in con.execute(f"SELECT * FROM events WHERE {where} ORDER BY position", args)]
    con.close()
    return out


def sql(path: Path, *statements: tuple[str, tuple]) -> None:
    con = sqlite3.connect(path)
    with con:
        for stmt, args in statements:
            con.execute(stmt, args)
    con.close()


def engine_verdict(path: Path, server: str | None = None):
    async def run():
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            return await verify(engine, server)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cli_verdict(path: Path, *extra: str) -> tuple[int, dict, str]:
    cmd = [sys.executable, "-m", "wingman.api.cli", "audit", "verify", *extra, "--database", str(path)]
    js = subprocess.run([*cmd, "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    text = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert js.returncode == text.returncode, (js.stderr, text.stderr)
    return js.returncode, json.loads(js.stdout), text.stdout


def assert_found(path: Path, stream: str, version: int, position: int, check: str, words: str) -> None:
    report = engine_verdict(path)
    assert not report.ok
    first = report.first
    assert (first.stream_id, first.version, first.position, first.check) == (stream, version, position, check), first
    assert words in first.message
    for scope in ((), (stream,)):  # whole log, then only that server
        code, doc, text = cli_verdict(path, *scope)
        assert code == 1
        fp = doc["first_problem"]
        assert (fp["stream"], fp["version"], fp["position"], fp["check"]) == (stream, version, position, check)
        assert f"v{version} at position {position}" in text and stream in text


def middle_event(path: Path, stream: str) -> dict:
    evs = rows(path, "stream_id = ?", (stream,))
    return evs[len(evs) // 2]


def test_pristine_log_verifies(db, pristine):
    report = engine_verdict(db)
    assert report.ok and report.events_checked == 120 and report.streams_checked == 2
    code, doc, text = cli_verdict(db)
    assert code == 0 and doc["ok"] and doc["first_problem"] is None
    assert text.startswith("OK")


def test_one_byte_of_data_changed(db, pristine):
    ev = middle_event(db, pristine[1][0])
    data = ev["data"]
    i = data.index('"', data.index(":")) + 1  # the first character inside the first string value
    new = "Q" if data[i] != "Q" else "R"
    sql(
        db,
        (
            "UPDATE events SET data = substr(data, 1, ?) || ? || substr(data, ?) WHERE position = ?",
            (i, new, i + 2, ev["position"]),
        ),
    )
    assert rows(db, "position = ?", (ev["position"],))[0]["data"] != data
    assert_found(db, ev["stream_id"], ev["version"], ev["position"], "hash", "does not match its contents")


def test_data_no_longer_json(db, pristine):
    ev = middle_event(db, pristine[1][1])
    sql(db, ("UPDATE events SET data = 'X' || substr(data, 2) WHERE position = ?", (ev["position"],)))
    assert_found(db, ev["stream_id"], ev["version"], ev["position"], "format", "not a JSON object")


def test_event_deleted_in_the_middle(db, pristine):
    stream = pristine[1][0]
    gone = middle_event(db, stream)
    after = rows(db, "stream_id = ? AND version = ?", (stream, gone["version"] + 1))[0]
    sql(db, ("DELETE FROM events WHERE position = ?", (gone["position"],)))
    assert_found(db, stream, after["version"], after["position"], "sequence", f"version {gone['version']} is missing")


def test_two_events_swapped(db, pristine):
    stream = pristine[1][1]
    a = middle_event(db, stream)
    b = rows(db, "stream_id = ? AND version = ?", (stream, a["version"] + 1))[0]
    sql(
        db,
        ("UPDATE events SET position = -1 WHERE position = ?", (a["position"],)),
        ("UPDATE events SET position = ? WHERE position = ?", (a["position"], b["position"])),
        ("UPDATE events SET position = ? WHERE position = -1", (b["position"],)),
    )
    # The first out-of-place event is b's, now at a's position; a comes back after it.
    assert_found(db, stream, b["version"], a["position"], "sequence", "missing")
    second = engine_verdict(db).findings[1]
    assert (second.version, second.position, second.check) == (a["version"], b["position"], "sequence")
    assert "reordered" in second.message
    # One server's pass reads its events in version order: the same first event is out of place,
    # its position behind the version before it.
    mine = engine_verdict(db, stream).first
    assert (mine.version, mine.position, mine.check) == (b["version"], a["position"], "sequence")
    assert f"sits before it in the log, at position {a['position']}" in mine.message


def _append_forged(path: Path, stream: str, type_: str, data: dict, meta: dict, good_hash: bool) -> int:
    head = rows(path, "stream_id = ?", (stream,))[-1]
    version, at = head["version"] + 1, "2030-01-01 00:00:00.000000"
    from datetime import datetime

    h = (
        event_hash(
            stream_id=stream,
            version=version,
            event_id="f0f0f0f0-0000-4000-8000-000000000001",
            type=type_,
            data=data,
            metadata=meta,
            recorded_at=datetime(2030, 1, 1, tzinfo=UTC),
            prev_hash=head["hash"],
        )
        if good_hash
        else "f" * 64
    )
    sql(
        path,
        (
            "INSERT INTO events (stream_id, version, event_id, type, data, metadata, recorded_at, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stream,
                version,
                "f0f0f0f0-0000-4000-8000-000000000001",
                type_,
                json.dumps(data),
                json.dumps(meta),
                at,
                head["hash"],
                h,
            ),
        ),
    )
    return rows(path, "event_id = ?", ("f0f0f0f0-0000-4000-8000-000000000001",))[0]["position"]


META = {
    "actor": "node-token",
    "channel": "http",
    "source_ip": None,
    "request_id": None,
    "operation_id": None,
    "cause": None,
}


def test_forged_event_with_a_wrong_hash(db, pristine):
    stream = pristine[1][0]
    pos = _append_forged(db, stream, "server.suspended", {}, META, good_hash=False)
    version = rows(db, "position = ?", (pos,))[0]["version"]
    assert_found(db, stream, version, pos, "hash", "does not match its contents")


def _state_of(path: Path, stream: str) -> str:
    last = [r for r in rows(path, "stream_id = ? AND type = 'state.changed'", (stream,))][-1]
    return json.loads(last["data"])["to_state"]


def test_forged_illegal_transition_with_a_good_hash(db, pristine):
    """A forger who recomputes the hash still cannot make the log say something impossible."""
    stream = pristine[1][1]
    state = _state_of(db, stream)
    wrong_from = "running" if state != "running" else "offline"
    pos = _append_forged(
        db,
        stream,
        "state.changed",
        {"from_state": wrong_from, "to_state": "offline", "trigger": "exited", "cause": "exited", "operation_id": None},
        META,
        good_hash=True,
    )
    version = rows(db, "position = ?", (pos,))[0]["version"]
    assert_found(db, stream, version, pos, "transition", f"the server was {state!r}")


def test_forged_second_outcome(db, pristine):
    stream = pristine[1][0]
    done = [r for r in rows(db, "stream_id = ? AND type = 'power.succeeded'", (stream,))][0]
    op = json.loads(done["data"])["operation_id"]
    pos = _append_forged(
        db,
        stream,
        "power.failed",
        {"operation_id": op, "action": "start", "reason": "forged"},
        META | {"operation_id": op},
        good_hash=True,
    )
    version = rows(db, "position = ?", (pos,))[0]["version"]
    assert_found(db, stream, version, pos, "operation", "second outcome")


def test_forged_outcome_without_request(db, pristine):
    stream = pristine[1][0]
    op = "0badc0de-0000-4000-8000-000000000000"
    pos = _append_forged(
        db,
        stream,
        "power.succeeded",
        {"operation_id": op, "action": "kill", "detail": None},
        META | {"operation_id": op},
        good_hash=True,
    )
    version = rows(db, "position = ?", (pos,))[0]["version"]
    assert_found(db, stream, version, pos, "operation", "not requested before it")


def test_verify_ignores_snapshots(db, pristine):
    """Verification trusts nothing but the log: a wrecked snapshots table changes nothing."""
    sql(
        db,
        (
            "INSERT INTO snapshots (stream_id, version, position, recorded_at, event_hash, fingerprint, state, "
            "state_hash) VALUES (?, 1, 1, '2026-01-01 00:00:00.000000', 'x', 'x', '{}', 'x')",
            (pristine[1][0],),
        ),
    )
    assert engine_verdict(db).ok
