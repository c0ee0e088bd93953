"""`wingman audit replay --statechart NEW.yaml`: a changed statechart asked of the history already
recorded, before it is deployed. An unchanged chart finds nothing; a transition removed is found
at the positions it was used; a state renamed reports every server in it; a chart that does not
load is a clear error, exit 2."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import yaml
from sqlalchemy import select

from tests.support.daemon import REPO
from tests.support.synthetic_log import build_log
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.schema import events as E

CHART = REPO / "statecharts" / "power.yaml"


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    """A legal history of 20 servers, 6,000 events, and the (position, server, from, to, trigger)
    of each of its state changes, read back from the database."""
    path = tmp_path_factory.mktemp("what-if") / "wingman.db"

    async def make():
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await build_log(engine, 6000, servers=20)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(E.c.position, E.c.stream_id, E.c.data)
                    .where(E.c.type == "state.changed")
                    .order_by(E.c.position)
                )
            ).all()
        await engine.dispose()
        return [(p, s, d["from_state"], d["to_state"], d["trigger"]) for p, s, d in rows]

    return path, asyncio.run(make())


def replay(db, chart, *extra):
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", "audit", "replay", "--statechart", str(chart), "-d", str(db), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def edited(tmp_path, change) -> str:
    doc = yaml.safe_load(CHART.read_text())
    change(doc)
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_chart_in_force_accepts_all_of_history(log):
    db, changes = log
    done = replay(db, CHART)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(changes)} transitions of 20 servers" in done.stdout


def test_a_removed_transition_is_found_where_it_was_used(log, tmp_path):
    db, changes = log

    def no_abort(doc):
        doc["transitions"] = [t for t in doc["transitions"] if t["trigger"] != "abort"]

    done = replay(db, edited(tmp_path, no_abort), "--format", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    refused = [(f["position"], f["server"]) for f in report["findings"] if f["kind"] == "refused"]
    expected = [(p, s) for p, s, _, _, trigger in changes if trigger == "abort"]
    assert expected and refused == expected
    assert all(
        f["from_state"] == "starting" and f["trigger"] == "abort" for f in report["findings"] if f["kind"] == "refused"
    )
    assert report["counts"]["refused"] == len(expected)


def test_a_renamed_state_reports_every_server_in_it(log, tmp_path):
    db, changes = log

    def rename(doc):
        for s in doc["states"]:
            if s["name"] == "running":
                s["name"] = "up"
        for t in doc["transitions"]:
            t["source"] = ["up" if x == "running" else x for x in t["source"]]
            t["dest"] = "up" if t["dest"] == "running" else t["dest"]

    done = replay(db, edited(tmp_path, rename), "--format", "json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    missing = [f for f in report["findings"] if f["kind"] == "missing state"]
    in_running = {s for _, s, frm, to, _ in changes if "running" in (frm, to)}
    assert len(missing) == 1 and missing[0]["from_state"] == "running"
    assert f"{len(in_running)} server(s)" in missing[0]["message"]
    now_running = {}
    for _, s, _, to, _ in changes:
        now_running[s] = to
    differs = {f["server"] for f in report["findings"] if f["kind"] == "differs"}
    assert {s for s, state in now_running.items() if state == "running"} <= differs
    text = replay(db, edited(tmp_path, rename))
    assert text.returncode == 1 and "missing state" in text.stdout and "CHANGES" in text.stdout


def test_one_server_and_a_window(log):
    db, changes = log
    server = changes[0][1]
    done = replay(db, CHART, "--server", server, "--format", "json")
    report = json.loads(done.stdout)
    assert report["servers_checked"] == 1
    assert report["events_checked"] == sum(1 for _, s, *_ in changes if s == server)
    bad = replay(db, CHART, "--server", "no-such-server")
    assert bad.returncode == 2


def test_a_chart_that_does_not_load_is_a_clear_error(log, tmp_path):
    db, _ = log
    broken = tmp_path / "broken.yaml"
    broken.write_text("states: [\n")
    done = replay(db, broken)
    assert done.returncode == 2
    assert "broken.yaml" in done.stderr and "Traceback" not in done.stderr
