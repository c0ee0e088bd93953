"""A changed statechart at daemon start (docs/statechart.md), on real daemons and their SQLite log:
the chart in force is recorded on the node's stream; the same chart (however it is laid out) is
no change; a chart that leaves every server in one of its states is adopted; one that would leave a
live server in a state it lacks is refused (exit 2, the report in the message, nothing written)
unless the operator accepts it, and then the server is re-placed, still adopted, still usable,
and the audit still checks the whole log; a chart that does not load stops the daemon."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.daemon import REPO, DaemonProcess, definition, kill_leftovers
from tests.support.http import power
from wingman.engine.statechart import STATECHART_PATH, chart_digest

PACKAGED = STATECHART_PATH.read_text()


def chart_file(folder: Path, name: str, change=None, text: str | None = None) -> Path:
    """The packaged chart, changed by `change(doc)` (or `text` as it is), in a file of its own."""
    doc = yaml.safe_load(PACKAGED)
    if change is not None:
        change(doc)
    path = folder / name
    path.write_text(text if text is not None else yaml.safe_dump(doc, sort_keys=False))
    return path


def rename_running(doc: dict) -> None:
    """`running` is called `up` now: every transition into or out of it follows."""
    for s in doc["states"]:
        if s["name"] == "running":
            s["name"] = "up"
    for t in doc["transitions"]:
        t["source"] = ["up" if s == "running" else s for s in t["source"]]
        t["dest"] = "up" if t["dest"] == "running" else t["dest"]


def add_maintenance(doc: dict) -> None:
    doc["states"].append({"name": "maintenance", "description": "Held for maintenance."})
    doc["transitions"].append({"trigger": "hold", "source": ["offline"], "dest": "maintenance"})
    doc["transitions"].append({"trigger": "release", "source": ["maintenance"], "dest": "offline"})


def no_exit_while_starting(doc: dict) -> None:
    """A process may no longer end before it is up (a transition history used, removed)."""
    for t in doc["transitions"]:
        if t["trigger"] == "exited":
            t["source"] = [s for s in t["source"] if s != "starting"]


def database(d: DaemonProcess) -> Path:
    return d.folder / "var" / "wingman.db"


def events(d: DaemonProcess, where: str = "1=1") -> list[dict]:
    with sqlite3.connect(database(d)) as conn:
        rows = conn.execute(f"SELECT stream_id, type, data, metadata FROM events WHERE {where} ORDER BY position")
        return [{"stream": s, "type": t, "data": json.loads(data), "meta": json.loads(m)} for s, t, data, m in rows]


def adoptions(d: DaemonProcess) -> list[dict]:
    return [e["data"] for e in events(d, "type = 'node.statechart_adopted'")]


def serve(d: DaemonProcess, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`wingman serve` run to its end (a start that is refused)."""
    d.folder.mkdir(parents=True, exist_ok=True)
    d.write_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")}
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", "serve", "--config", str(d.config_path), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wingman(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")} | {"COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def act(d: DaemonProcess, uuid: str, action: str) -> dict:
    return d.wait_operation(power(d, uuid, action)["id"])


def with_chart(d: DaemonProcess, path: Path) -> DaemonProcess:
    d.extra_config = {"system": {"root_directory": str(d.folder / "var"), "statechart": str(path)}}
    return d


def test_the_chart_in_force_is_recorded_once_and_an_added_state_is_a_recorded_change(tmp_path):
    d = DaemonProcess(tmp_path / "node")
    try:
        d.start()
        d.stop()
        [first] = adoptions(d)
        assert first["decision"] == "first_start" and first["previous_hash"] is None
        assert first["chart"] == PACKAGED and first["chart_hash"] == chart_digest(yaml.safe_load(PACKAGED))
        # The same chart, laid out otherwise and commented: no change, nothing recorded.
        relaid = chart_file(
            tmp_path, "relaid.yaml", text="# the same chart\n" + yaml.safe_dump(yaml.safe_load(PACKAGED))
        )
        count = len(events(d))
        with_chart(d, relaid).start()
        d.stop()
        assert adoptions(d) == [first] and len(events(d)) == count
        # A state added: nothing of the history is lost, the change is recorded and the daemon runs.
        added = chart_file(tmp_path, "added.yaml", add_maintenance)
        with_chart(d, added).start()
        with d.client() as c:
            assert c.get("/api/system").status_code == 200
        d.stop()
        [_, change] = adoptions(d)
        assert change["decision"] == "history_accepted" and change["previous_hash"] == first["chart_hash"]
        assert change["chart"] == added.read_text() and change["source"] == str(added)
        assert change["servers_replaced"] == 0
    finally:
        d.stop()
        kill_leftovers(d.folder)


def test_a_chart_without_a_live_servers_state_is_refused_until_the_operator_accepts_it(tmp_path):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = DaemonProcess(tmp_path / "node", servers=[server])
    renamed = chart_file(tmp_path, "renamed.yaml", rename_running)
    try:
        d.start()
        assert act(d, uuid, "start")["status"] == "succeeded"
        d.wait_state(uuid, "running")
        d.stop()  # the local server outlives the daemon, recorded `running`
        before = events(d)

        refused = serve(with_chart(d, renamed))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        message = refused.stderr
        assert f"server {uuid} is 'running'" in message and "'up'" in message
        assert "CHANGES:" in message and "missing state" in message  # the what-if report, as audit replay says it
        assert "--accept-chart-change" in message
        assert events(d) == before  # nothing written

        d.serve_args = ["--accept-chart-change"]
        d.start()
        [_, decision] = adoptions(d)
        assert decision["decision"] == "operator_accepted" and decision["servers_replaced"] == 1
        assert decision["counts"]["missing state"] == 1 and decision["counts"]["differs"] == 1
        [replaced] = [e for e in events(d, f"stream_id = '{uuid}'") if e["data"].get("trigger") == "statechart_change"]
        assert (replaced["data"] | replaced["meta"]).items() >= {
            "from_state": "running",
            "to_state": "up",
            "trigger": "statechart_change",
            "cause": "statechart_change",
            "actor": "operator",
        }.items()
        # The process that ran on is adopted, not orphaned; the server is usable in the new chart.
        adopted = [e for e in events(d, f"stream_id = '{uuid}'") if e["type"] == "process.started"][-1]
        assert adopted["data"]["adopted"]
        d.wait_state(uuid, "up")
        assert act(d, uuid, "stop")["status"] == "succeeded"
        d.wait_state(uuid, "offline")
        assert act(d, uuid, "start")["status"] == "succeeded"
        d.wait_state(uuid, "up")
        # The whole log still checks: old transitions under the old chart, the rest under the new.
        verified = wingman("audit", "verify", "--config", str(d.config_path), "--format", "json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        state = wingman("audit", "state", uuid, "--config", str(d.config_path), "--format", "json")
        assert state.returncode == 0, state.stdout + state.stderr
        assert json.loads(state.stdout)["state"] == "up"
        replay = wingman("audit", "replay", "--statechart", str(renamed), "--config", str(d.config_path))
        assert replay.returncode == 1 and "elsewhere: server" in replay.stdout, replay.stdout + replay.stderr
        assert act(d, uuid, "stop")["status"] == "succeeded"
        d.stop()
        # Restarted with the chart it adopted: nothing new to decide, and the state folds again.
        d.serve_args = []
        d.start()
        assert len(adoptions(d)) == 2
        d.wait_state(uuid, "offline")
    finally:
        d.stop()
        kill_leftovers(d.folder)


def drop_running(doc: dict) -> None:
    """No `running` at all: a server is up as soon as it starts, and `ready` ends its boot offline
    (a chart nobody would want, but one where the replay of a running server ends offline)."""
    doc["states"] = [s for s in doc["states"] if s["name"] != "running"]
    for t in doc["transitions"]:
        t["source"] = [s for s in t["source"] if s != "running"]
        t["dest"] = "offline" if t["dest"] == "running" else t["dest"]


def test_a_running_server_whose_state_the_accepted_chart_drops_is_stopped_cleanly_not_orphaned(tmp_path):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = DaemonProcess(tmp_path / "node", servers=[server])
    try:
        d.start()
        act(d, uuid, "start")
        d.wait_state(uuid, "running")
        pid = [e for e in events(d, f"stream_id = '{uuid}'") if e["type"] == "process.started"][-1]["data"]["pid"]
        d.stop()
        assert Path(f"/proc/{pid}").exists()  # it ran on without the daemon

        d.serve_args = ["--accept-chart-change"]
        with_chart(d, chart_file(tmp_path, "dropped.yaml", drop_running)).start()
        # The new chart's replay would have it offline while its process runs: it is placed where
        # the engine can still end it (`exited`), and boot recovery ends it as it ends one found stopping.
        [placed] = [
            e["data"] for e in events(d, f"stream_id = '{uuid}'") if e["data"].get("trigger") == "statechart_change"
        ]
        assert (placed["from_state"], placed["to_state"]) == ("running", "stopping")
        d.wait_state(uuid, "offline")
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        d.stop()
        kill_leftovers(d.folder)


def test_a_chart_removing_a_transition_only_history_used_boots_and_the_old_history_still_folds(tmp_path):
    # A process that ends before it printed its done-line: `exited` from `starting`, once.
    server = definition(invocation=f"{sys.executable} -c 'raise SystemExit(3)'")
    uuid = server["settings"]["uuid"]
    d = DaemonProcess(tmp_path / "node", servers=[server])
    try:
        d.start()
        act(d, uuid, "start")
        d.wait_state(uuid, "offline")
        d.stop()
        changes = [e["data"] for e in events(d, f"stream_id = '{uuid}'") if e["type"] == "state.changed"]
        assert {"from_state": "starting", "trigger": "exited"}.items() <= changes[-1].items()

        narrower = chart_file(tmp_path, "narrower.yaml", no_exit_while_starting)
        with_chart(d, narrower).start()  # no flag: every server is in a state of the new chart
        d.stop()
        [_, change] = adoptions(d)
        assert change["decision"] == "history_accepted" and change["counts"] == {"refused": 1, "differs": 1}
        assert "statechart adopted" in d.read_log()  # the report, as a warning
        verified = wingman("audit", "verify", "--config", str(d.config_path))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        state = wingman("audit", "state", uuid, "--config", str(d.config_path), "--format", "json")
        assert state.returncode == 0 and json.loads(state.stdout)["state"] == "offline", state.stdout + state.stderr
        timeline = wingman("audit", "timeline", uuid, "--config", str(d.config_path), "--format", "json")
        assert timeline.returncode == 0, timeline.stdout + timeline.stderr
    finally:
        d.stop()
        kill_leftovers(d.folder)


def test_a_chart_that_does_not_load_stops_the_daemon_before_anything_is_written(tmp_path):
    d = DaemonProcess(tmp_path / "node")
    broken = chart_file(tmp_path, "broken.yaml", text="states: [\n")
    r = serve(with_chart(d, broken))
    assert r.returncode == 2 and f"{broken} is not a valid statechart" in r.stderr, r.stdout + r.stderr
    without = chart_file(tmp_path, "without.yaml", lambda doc: doc["transitions"].pop())  # `installed`
    r = serve(with_chart(d, without))
    assert r.returncode == 2 and "has no transition for the trigger(s) installed" in r.stderr, r.stdout + r.stderr
    r = serve(with_chart(d, tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "cannot read the statechart" in r.stderr, r.stdout + r.stderr
    assert not database(d).exists()
