"""The exports committed beside statecharts/power.yaml are what the exporter makes from it now; a
changed chart makes the check fail until `wingman diagram refresh` runs (shown on a copy in a temp
folder: the real power.yaml is never modified by a test)."""

from __future__ import annotations

import re
import shutil

import yaml

from tests.support.diagrams import scxml_transitions, wingman
from wingman.engine.diagrams.exported import DEFAULT_CHART, export_paths, stale_exports
from wingman.engine.diagrams.render import svg_content
from wingman.engine.diagrams.statechart import export
from wingman.engine.statechart import STATECHART_PATH, parse_statechart

COMMITTED = {"mermaid": "power.mmd", "svg": "power.svg", "scxml": "power.scxml"}


def test_the_check_reads_the_chart_the_runtime_enforces():
    assert DEFAULT_CHART.resolve() == STATECHART_PATH.resolve()
    assert {fmt: p.name for fmt, p in export_paths(DEFAULT_CHART).items()} == COMMITTED


def test_committed_exports_are_current():
    stale = stale_exports(STATECHART_PATH)
    assert stale == [], f"stale diagrams: {stale}; run `wingman diagram refresh` and commit the result"
    chart = parse_statechart(STATECHART_PATH.read_text())
    folder = STATECHART_PATH.parent
    # Mermaid and SCXML byte for byte; the SVG in its normalized form (no coordinates: they follow
    # the fonts of the machine that drew it), which still carries every text and colour.
    for fmt in ("mermaid", "scxml"):
        assert (folder / COMMITTED[fmt]).read_bytes() == export(chart, fmt)
    assert svg_content((folder / "power.svg").read_bytes()) == svg_content(export(chart, "svg"))


def test_cli_check_passes_on_the_real_chart():
    r = wingman("diagram", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"up to date" in r.stdout


def _copy(tmp_path):
    for name in ["power.yaml", *COMMITTED.values()]:
        shutil.copy(STATECHART_PATH.parent / name, tmp_path / name)
    return tmp_path / "power.yaml"


def test_a_changed_chart_is_stale_until_refresh(tmp_path):
    real = {p: p.read_bytes() for p in STATECHART_PATH.parent.iterdir()}
    chart = _copy(tmp_path)
    assert stale_exports(chart) == []  # the copy starts current

    doc = yaml.safe_load(chart.read_text())
    doc["states"].append({"name": "crashed", "description": "The process died; the crash handler decides."})
    doc["transitions"].append(
        {
            "trigger": "crash",
            "source": ["running"],
            "dest": "crashed",
            "description": "The process exited without being asked to.",
        }
    )
    chart.write_text(yaml.safe_dump(doc, sort_keys=False))

    stale = stale_exports(chart)
    assert sorted(s.path.name for s in stale) == sorted(COMMITTED.values())
    assert all(s.reason == "differs from the YAML" for s in stale)
    r = wingman("diagram", "check", "--chart", str(chart))
    assert r.returncode == 1
    for name in COMMITTED.values():
        assert f"stale: {tmp_path / name}".encode() in r.stdout
    assert b"wingman diagram refresh" in r.stdout

    r = wingman("diagram", "refresh", "--chart", str(chart))
    assert r.returncode == 0, r.stderr
    assert sorted(re.findall(r"wrote (\S+)", r.stdout.decode())) == sorted(
        str(tmp_path / n) for n in COMMITTED.values()
    )
    assert stale_exports(chart) == []
    assert wingman("diagram", "check", "--chart", str(chart)).returncode == 0
    _, states, arrows = scxml_transitions((tmp_path / "power.scxml").read_bytes())
    assert "crashed" in states and ("running", "crash", "crashed") in arrows
    assert "running --> crashed : crash" in (tmp_path / "power.mmd").read_text()
    assert b"crashed" in (tmp_path / "power.svg").read_bytes()

    r = wingman("diagram", "refresh", "--chart", str(chart))  # nothing left to write
    assert r.returncode == 0 and b"up to date" in r.stdout and b"wrote" not in r.stdout
    assert {p: p.read_bytes() for p in STATECHART_PATH.parent.iterdir()} == real  # the real files untouched


def test_a_missing_or_edited_export_is_stale(tmp_path):
    chart = _copy(tmp_path)
    (tmp_path / "power.mmd").unlink()
    scxml = tmp_path / "power.scxml"
    scxml.write_text(scxml.read_text().replace('event="ready"', 'event="go"'))
    assert {(s.path.name, s.reason) for s in stale_exports(chart)} == {
        ("power.mmd", "missing"),
        ("power.scxml", "differs from the YAML"),
    }


def test_svg_comparison_ignores_layout_but_not_content(tmp_path):
    chart = _copy(tmp_path)
    svg = tmp_path / "power.svg"
    original = svg.read_text()
    # Another machine's fonts move everything: every coordinate shifted is still current.
    svg.write_text(
        re.sub(
            r'(?<![\w-])(points|cx|cy|rx|ry|x|y|d|width|height|viewBox|transform)="([^"]*)"',
            lambda m: f'{m[1]}="{re.sub(r"[0-9]+", lambda n: str(int(n[0]) + 1), m[2])}"',
            original,
        )
    )
    assert svg.read_text() != original and stale_exports(chart) == []
    # A label that says something else is stale.
    assert "> ready <" in original
    svg.write_text(original.replace("> ready <", "> ready now <", 1))
    assert [s.path.name for s in stale_exports(chart)] == ["power.svg"]
    svg.write_text(original.replace('fill="#eef3fb"', 'fill="#ffffff"'))  # a restyled state
    assert [s.path.name for s in stale_exports(chart)] == ["power.svg"]
    svg.write_text("not an svg")
    assert [s.path.name for s in stale_exports(chart)] == ["power.svg"]
