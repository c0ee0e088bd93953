"""`wingman diagram statechart --diff OLD NEW`: what a change to the statechart does, drawn (SVG,
Mermaid) with the added and removed parts marked, and said in a line; a chart that does not load
is a clear error that draws nothing."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import yaml

from tests.support.daemon import REPO

CHART = REPO / "statecharts" / "power.yaml"
SVG_NS = "{http://www.w3.org/2000/svg}"


def changed_chart(tmp_path):
    """The chart with `stop` no longer allowed from `starting`, and a new `paused` state."""
    doc = yaml.safe_load(CHART.read_text())
    for t in doc["transitions"]:
        if t["trigger"] == "stop":
            t["source"] = [s for s in t["source"] if s != "starting"]
    doc["states"].append({"name": "paused", "description": "Frozen in place.", "panel_status": "running"})
    doc["transitions"].append({"trigger": "pause", "source": ["running"], "dest": "paused", "description": "Froze."})
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def diagram(*args):
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", "diagram", "statechart", *args],
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )


def test_the_svg_marks_what_was_added_and_removed(tmp_path):
    new = changed_chart(tmp_path)
    done = diagram("--diff", str(CHART), str(new), "-F", "svg")
    assert done.returncode == 0, done.stderr
    svg = ET.fromstring(done.stdout)
    kinds = {g.get("id"): g.get("class", "") for g in svg.iter(f"{SVG_NS}g") if g.get("id")}
    assert "added" in kinds["state_paused"]
    assert "added" in kinds["t_running_pause_paused"]
    assert "removed" in kinds["t_starting_stop_stopping"]
    assert "kept" in kinds["t_running_stop_stopping"] and "kept" in kinds["state_offline"]
    said = done.stderr.decode()
    assert "1 states added, 1 transitions added, 1 transitions removed" in said


def test_mermaid_marks_them_too(tmp_path):
    new = changed_chart(tmp_path)
    text = diagram("--diff", str(CHART), str(new), "-F", "mermaid").stdout.decode()
    assert "class paused added" in text
    assert "starting --> stopping : − stop" in text and "running --> paused : + pause" in text
    assert "running --> stopping : stop" in text


def test_the_same_chart_is_no_change_and_a_bad_one_a_clear_error(tmp_path):
    same = diagram("--diff", str(CHART), str(CHART), "-F", "mermaid")
    assert same.returncode == 0 and "no change" in same.stderr.decode()
    broken = tmp_path / "broken.yaml"
    broken.write_text("states: [\n")
    out = tmp_path / "diff.svg"
    bad = diagram("--diff", str(CHART), str(broken), "-F", "svg", "-o", str(out))
    assert bad.returncode == 2 and "broken.yaml" in bad.stderr.decode()
    assert not out.exists()
    refused = diagram("--diff", str(CHART), str(CHART), "-F", "scxml")
    assert refused.returncode == 2 and "--diff draws" in refused.stderr.decode()
