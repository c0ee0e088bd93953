"""`wingman diagram history|timeline` as a user runs them (subprocesses) on real database files:
one written by the real engine driving a real process, and a long synthetic but legal log. The
diagrams hold exactly the log's transitions; bad input is a message and exit 2, and writes nothing."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import timedelta

import pytest

from tests.support.diagrams import (
    counts_of,
    credit,
    decoded_png,
    dot_edges,
    drive_server,
    happened,  # an exit's change is drawn when the exit was seen
    mermaid_counts,
    stored_events,
    svg_groups,
    wingman,
)
from tests.support.synthetic_log import build_log
from wingman.engine.audit.describe import CAUSES
from wingman.engine.diagrams.timeline import MAX_CHANGES, when
from wingman.engine.diagrams.window import Window
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.points import iso

TIMELINE_ARROW = re.compile(
    r"^\s*(\S+)->>(\S+): (\S+ \S+) (\w+): (.+?) \((?:(\w+) asked )?by (\S+)\)(?: via (\S+))?$", re.M
)


@pytest.fixture(scope="module")
def driven(tmp_path_factory):
    db, uuid = drive_server(tmp_path_factory.mktemp("engine"))
    return db, uuid, stored_events(db, uuid)


@pytest.fixture(scope="module")
def long_log(tmp_path_factory):
    """One server with hundreds of state changes, one event a second from 2026-01-01T00:00:00Z."""
    db = tmp_path_factory.mktemp("synthetic") / "wingman.db"

    async def go():
        engine = create_engine(f"sqlite+aiosqlite:///{db}")
        await upgrade(engine)
        ids = await build_log(engine, 2500, servers=1, seed=5)
        await engine.dispose()
        return ids[0]

    uuid = asyncio.run(go())
    return db, uuid, stored_events(db, uuid)


def counted(dot: str):
    return {(s, label.split(" ×")[0], d): int(label.split(" ×")[1]) for s, label, d in dot_edges(dot) if "×" in label}


def changes(events, window: Window = Window()):
    return [e for e in events if e["type"] == "state.changed" and window.holds(e["at"])]


def test_history_of_the_engines_server(driven, tmp_path):
    db, uuid, events = driven
    r = wingman("diagram", "history", uuid, "--database", str(db), "--format", "dot")
    assert r.returncode == 0, r.stderr
    assert counted(r.stdout.decode()) == counts_of(events)

    since = changes(events)[-2]["at"]  # the failed start and its abort
    r = wingman("diagram", "history", uuid, "-d", str(db), "--since", iso(since))
    assert r.returncode == 0, r.stderr
    assert mermaid_counts(r.stdout.decode()) == counts_of(changes(events, Window(since)))

    out = tmp_path / "history.png"
    r = wingman("diagram", "history", uuid, "-d", str(db), "-F", "png", "-o", str(out))
    assert r.returncode == 0 and f"wrote {out}".encode() in r.stderr
    decoded_png(out.read_bytes())


def test_timeline_of_the_engines_server(driven, tmp_path):
    db, uuid, events = driven
    r = wingman("diagram", "timeline", uuid, "-d", str(db))
    assert r.returncode == 0, r.stderr
    expected = [
        (
            e["data"]["from_state"],
            e["data"]["to_state"],
            when(happened(events, e)),
            e["data"]["trigger"],
            CAUSES[e["data"]["cause"]],
            *credit(events, e),
        )
        for e in changes(events)
    ]
    assert TIMELINE_ARROW.findall(r.stdout.decode()) == expected

    out = tmp_path / "timeline.svg"
    r = wingman("diagram", "timeline", uuid, "-d", str(db), "-F", "svg", "--output", str(out))
    assert r.returncode == 0, r.stderr
    groups = svg_groups(out.read_bytes())
    assert sorted(int(g.split("_")[1]) for g in groups if g.startswith("change_")) == list(
        range(1, len(changes(events)) + 1)
    )

    out = tmp_path / "timeline.png"
    r = wingman("diagram", "timeline", uuid, "-d", str(db), "-F", "png", "-o", str(out))
    assert r.returncode == 0 and f"wrote {out}".encode() in r.stderr
    decoded_png(out.read_bytes())


def test_a_long_history_counts_every_transition(long_log):
    db, uuid, events = long_log
    assert sum(counts_of(events).values()) > MAX_CHANGES  # more than a timeline draws
    r = wingman("diagram", "history", uuid, "-d", str(db), "-F", "dot")
    assert r.returncode == 0, r.stderr
    assert counted(r.stdout.decode()) == counts_of(events)
    window = Window(events[100]["at"], events[400]["at"])
    r = wingman(
        "diagram",
        "history",
        uuid,
        "-d",
        str(db),
        "-F",
        "dot",
        "--since",
        iso(window.since),
        "--until",
        "2026-01-01T00:06:40+00:00",
    )  # events[400], written with an offset
    assert iso(window.until) == "2026-01-01T00:06:40Z"
    assert counted(r.stdout.decode()) == counts_of(changes(events, window))


def test_a_timeline_too_long_to_read_asks_for_a_narrower_window(long_log, tmp_path):
    db, uuid, events = long_log
    out = tmp_path / "timeline.svg"
    r = wingman("diagram", "timeline", uuid, "-d", str(db), "-F", "svg", "-o", str(out))
    assert r.returncode == 2 and not out.exists()
    assert f"at most {MAX_CHANGES}" in r.stderr.decode() and "--since and --until" in r.stderr.decode()

    window = Window(events[200]["at"], events[260]["at"])
    r = wingman("diagram", "timeline", uuid, "-d", str(db), "--since", iso(window.since), "--until", iso(window.until))
    assert r.returncode == 0, r.stderr
    drawn = [(a[0], a[3], a[1]) for a in TIMELINE_ARROW.findall(r.stdout.decode())]
    assert (
        drawn
        == [(e["data"]["from_state"], e["data"]["trigger"], e["data"]["to_state"]) for e in changes(events, window)]
        and drawn
    )


def _log_size(db) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*), max(position) FROM events").fetchone()


def test_format_is_big_f_and_f_is_not_format(driven):
    """-f means --follow (in power and events); --format is -F in every command."""
    db, uuid, _ = driven
    r = wingman("diagram", "history", uuid, "-d", str(db), "-f", "dot")
    assert r.returncode == 2 and "No such option: -f" in r.stderr.decode()


@pytest.mark.parametrize(
    "args, words",
    [
        (["history", "00000000-0000-4000-8000-000000000000"], "no server 00000000-0000-4000-8000-000000000000"),
        (["timeline", "00000000-0000-4000-8000-000000000000"], "no server"),
        (["history", "{uuid}", "--since", "yesterday"], "--since 'yesterday' is not an RFC 3339 time"),
        (["timeline", "{uuid}", "--until", "2026-01-01T00:00:00"], "with a time zone"),
        (
            ["history", "{uuid}", "--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
            "--since (2026-02-01T00:00:00Z) is after --until (2026-01-01T00:00:00Z)",
        ),
        (
            ["timeline", "{uuid}", "--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
            "is after --until",
        ),
        (["history", "{uuid}", "--format", "scxml"], "'scxml' is not one of"),
        (["timeline", "{uuid}", "--format", "dot"], "'dot' is not one of"),
        (["history", "{uuid}", "--database", "/nonexistent/wingman.db"], "does not exist"),
    ],
)
def test_bad_input_is_exit_2_and_writes_nothing(driven, tmp_path, args, words):
    db, uuid, _ = driven
    before = _log_size(db)
    out = tmp_path / "out.txt"
    args = [a.replace("{uuid}", uuid) for a in args]
    if "--database" not in args:
        args += ["--database", str(db)]
    r = wingman("diagram", *args, "--output", str(out))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert words in " ".join(r.stderr.decode().split())
    assert not out.exists() and r.stdout == b""
    assert _log_size(db) == before


def test_history_reads_the_database_a_config_names(driven, tmp_path):
    db, uuid, events = driven
    (tmp_path / "wingman.yml").write_text(f"token: a-token-long-enough\nsystem: {{root_directory: {db.parent}}}\n")
    r = wingman("diagram", "history", uuid, "--config", str(tmp_path / "wingman.yml"), "-F", "dot")
    assert r.returncode == 0, r.stderr
    assert counted(r.stdout.decode()) == counts_of(events)
    r = wingman(
        "diagram", "history", uuid, "--until", iso(events[0]["at"] - timedelta(seconds=1)), "-d", str(db), "-F", "dot"
    )
    assert r.returncode == 0 and counted(r.stdout.decode()) == {}  # a window before it existed: nothing taken
