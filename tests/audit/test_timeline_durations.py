"""The timeline draws time: a server 7 ms in `starting` and 10 minutes in `running` gets a short box
and a tall one, each saying how long, in the SVG and the PNG that `wingman diagram timeline` writes
from a real SQLite log (hash-chained rows with the times of such a history)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid as uuidlib
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from tests.support.diagrams import decoded_png, svg_groups, wingman
from tests.support.synthetic_log import BASE_TIME, _insert, _meta, _sc, definition
from wingman.engine.diagrams.render import SVG_NS
from wingman.engine.diagrams.timeline import PALETTE
from wingman.engine.statechart import load_statechart
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.hashing import GENESIS, event_hash

UUID = "5e2b7f3a-0000-4000-8000-00000000d0d0"
START, KILL = "0000000a-0000-4000-8000-000000000001", "0000000a-0000-4000-8000-000000000002"

# (seconds after BASE_TIME, type, data, metadata): offline 1 s, starting 7 ms, running 10 min, then
# killed: offline until the window's end (20 min after the kill).
HISTORY = [
    (0.0, "server.registered", {"definition": definition(UUID)}, _meta(actor="config")),
    (1.0, "power.requested", {"operation_id": START, "action": "start", "wait_seconds": 30}, _meta(START)),
    (1.0, "power.started", {"operation_id": START, "action": "start", "lock_acquired": True}, _meta(START)),
    (1.0, *_sc(START, "offline", "starting", "start", "operator")),
    (1.005, "process.started", {"runtime": "process", "pid": 4242, "adopted": False}, _meta(START)),
    (1.007, *_sc(START, "starting", "running", "ready", "process_ready")),
    (1.007, "power.succeeded", {"operation_id": START, "action": "start", "detail": "running"}, _meta(START)),
    (601.007, "power.requested", {"operation_id": KILL, "action": "kill", "wait_seconds": 30}, _meta(KILL)),
    (601.007, "power.started", {"operation_id": KILL, "action": "kill", "lock_acquired": True}, _meta(KILL)),
    (
        601.007,
        "process.exited",
        {"exit_code": None, "signal": "SIGKILL", "oom_killed": False, "reason": None},
        _meta(KILL, "killed", "daemon"),
    ),
    (601.007, *_sc(KILL, "running", "offline", "exited", "killed", "daemon")),
    (601.008, "power.succeeded", {"operation_id": KILL, "action": "kill", "detail": "killed"}, _meta(KILL)),
]
UNTIL = BASE_TIME + timedelta(seconds=1801.007)


async def write_log(db) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await upgrade(engine)
        rows, prev = [], GENESIS
        for version, (offset, typ, data, meta) in enumerate(HISTORY, start=1):
            at = BASE_TIME + timedelta(seconds=offset)
            event_id = str(uuidlib.UUID(int=version, version=4))
            fields = dict(stream_id=UUID, version=version, event_id=event_id, type=typ, data=data, metadata=meta)
            h = event_hash(**fields, recorded_at=at, prev_hash=prev)
            rows.append(dict(**fields, recorded_at=at, prev_hash=prev, hash=h))
            prev = h
        await _insert(engine, rows)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("durations") / "wingman.db"
    asyncio.run(write_log(path))
    assert wingman("audit", "verify", UUID, "-d", str(path)).returncode == 0  # a legal, intact log
    return path


def box_heights(svg: bytes) -> dict[str, float]:
    """{interval_N: height in points} of the timeline's boxes, read from their drawn outlines."""
    heights = {}
    for g in ET.fromstring(svg).iter(f"{SVG_NS}g"):
        if (g.get("id") or "").startswith("interval_"):
            outline = next(g.iter(f"{SVG_NS}path"))
            ys = [float(y) for y in re.findall(r"-?[\d.]+,(-?[\d.]+)", outline.get("d"))]
            heights[g.get("id")] = max(ys) - min(ys)
    return heights


def test_svg_boxes_grow_with_how_long_each_state_lasted(db, tmp_path):
    out = tmp_path / "timeline.svg"
    until = UNTIL.isoformat().replace("+00:00", "Z")
    r = wingman("diagram", "timeline", UUID, "-d", str(db), "-F", "svg", "--until", until, "-o", str(out))
    assert r.returncode == 0, r.stderr
    svg = out.read_bytes()
    groups = svg_groups(svg)
    texts = {gid: g["texts"] for gid, g in groups.items() if gid.startswith("interval_")}
    assert texts["interval_0"][:2] == ["offline", "for 1.0 s"]
    assert texts["interval_1"][:2] == ["starting", "for 7 ms"]
    assert texts["interval_2"][:2] == ["running", "for 10m 0s"]
    assert texts["interval_3"][:2] == ["offline", "for 20m 0s up to the window's end, and on"]

    h = box_heights(svg)
    # 7 ms < 1 s < 10 min < 20 min: each box taller than the shorter state's, by its log of time
    assert h["interval_1"] < h["interval_0"] < h["interval_2"] < h["interval_3"]
    assert h["interval_2"] > 2.5 * h["interval_1"]
    assert h["interval_2"] - h["interval_0"] == pytest.approx(72 * 0.3 * 2.78, abs=3)  # 600x longer: 2.78 decades
    assert "A box is as tall as the state lasted" in " ".join(groups_title(svg))


def groups_title(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    graph = next(g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "graph")
    return ["".join(t.itertext()) for t in graph.findall(f"{SVG_NS}text")]


def test_png_boxes_grow_with_how_long_each_state_lasted(db, tmp_path):
    out = tmp_path / "timeline.png"
    until = UNTIL.isoformat().replace("+00:00", "Z")
    r = wingman("diagram", "timeline", UUID, "-d", str(db), "-F", "png", "--until", until, "-o", str(out))
    assert r.returncode == 0, r.stderr
    image = decoded_png(out.read_bytes()).convert("RGB")
    states = list(load_statechart().states)

    def rows_filled(state: str) -> int:
        """How many pixel rows hold the state's fill colour: its box's height in the image."""
        colour = PALETTE[states.index(state) % len(PALETTE)].lstrip("#")
        rgb = tuple(int(colour[i : i + 2], 16) for i in (0, 2, 4))
        pixels = image.load()
        return sum(1 for y in range(image.height) if sum(pixels[x, y] == rgb for x in range(0, image.width, 4)) > 10)

    starting, running = rows_filled("starting"), rows_filled("running")
    assert starting > 0 and running > 2.5 * starting, (starting, running)


def test_audit_timeline_says_each_duration(db):
    r = wingman("audit", "timeline", UUID, "-d", str(db), "-F", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(row["state"], row["seconds"]) for row in rows[:3]] == [
        ("offline", 1.0),
        ("starting", 0.007),
        ("running", 600.0),
    ]
