"""The benchmark history (benchmarks/results.jsonl) and its plot: a full run of the suite appends
exactly one row, other runs none unless asked; the plot is a PNG; a line that is not a row is
reported by its number. The suite runs here with two groups of made-up figures, so nothing is
measured (benchmarks/README.md, "History")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from benchmarks.suite import history
from benchmarks.suite.figures import Figure
from tests.support.daemon import REPO


def fake_alpha(smoke: bool) -> list[Figure]:
    return [
        Figure(
            "one append, one caller (SQLite)",
            1800.0 if not smoke else 10.0,
            4000.0,
            "events/s",
            target_ratio=0.5,
            baseline_label="sqlite3",
        ),
        Figure("  p99 of the 202 at that load", 19.5, 4.0, "ms", target_value=25, lower_is_better=True),
    ]


def fake_beta(smoke: bool) -> list[Figure]:
    return [
        Figure("full replay (made up)", 90_000.0, 300_000.0, "events/s", target_ratio=0.3),
        Figure("nothing measured", None, None, "ms", error="not measured: made up"),
    ]


@pytest.fixture
def suite(monkeypatch, tmp_path):
    """The suite's main() with the two fake groups, a fixed machine and its files under tmp_path."""
    import benchmarks.suite.__main__ as suite_main

    monkeypatch.setattr(suite_main, "GROUPS", {"alpha": (__name__, "fake_alpha"), "beta": (__name__, "fake_beta")})
    monkeypatch.setattr(
        suite_main,
        "machine",
        lambda: {
            "cpu": "test CPU",
            "cores": 2,
            "memory_mib": 1024,
            "kernel": "6.1",
            "load_average": (0.5, 0.25, float("nan")),
            "python": "3.11.2",
            "sqlite": "3.40.1",
            "packages": {"sanic": "23.12"},
            "wrk": "absent",
            "postgresql": "absent",
            "docker": "absent",
            "commit": "abc1234",
        },
    )
    files = {"history": tmp_path / "results.jsonl", "plot": tmp_path / "history.png", "json": tmp_path / "run.json"}

    def run(*args: str) -> int:
        return suite_main.main(
            [*args, "--json", str(files["json"]), "--history", str(files["history"]), "--plot", str(files["plot"])]
        )

    run.files = files
    return run


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_a_full_run_appends_exactly_one_well_formed_row(suite, capsys):
    assert suite() == 1  # one made-up figure was not measured: the run says so, and still records
    (line,) = lines(suite.files["history"])
    row = json.loads(line)
    assert history.check(row) is None
    assert list(row)[: len(history.ROW_KEYS)] == list(history.ROW_KEYS)
    assert row["source"] == "suite" and row["smoke"] is False and row["groups"] == ["alpha", "beta"]
    assert row["time"].endswith("Z") and row["cores"] == 2 and row["python"] == "3.11.2"
    assert row["load_average"] == [0.5, 0.25, None]  # no NaN in JSON
    assert row["commit"] and isinstance(row["dirty"], bool)  # the repository's own HEAD
    one, p99, replay, missing = row["figures"]
    assert one == {
        "group": "alpha",
        "name": "one append, one caller (SQLite)",
        "value": 1800.0,
        "unit": "events/s",
        "baseline": 4000.0,
        "ratio": 0.45,
        "target": "ratio >= 0.5",
        "target_ratio": 0.5,
        "target_value": None,
        "lower_is_better": False,
        "met": False,
        "error": None,
        "note": "sqlite3",
    }
    assert p99["name"] == "p99 of the 202 at that load" and p99["met"] is True and p99["target"] == "<= 25 ms"
    assert replay["group"] == "beta" and replay["ratio"] == 0.3 and replay["met"] is True
    assert missing["value"] is None and missing["met"] is False and missing["error"] == "not measured: made up"
    with Image.open(suite.files["plot"]) as png:  # the plot was redrawn from the history
        assert png.format == "PNG" and png.width > 100
    assert "history: one row appended" in capsys.readouterr().out

    suite()
    assert len(lines(suite.files["history"])) == 2  # a second full run: one more row, the first untouched


def test_only_and_smoke_runs_append_nothing_unless_asked(suite):
    suite("--only", "alpha")
    suite("--smoke")
    assert lines(suite.files["history"]) == []
    suite("--only", "alpha", "--record")
    suite("--smoke", "--record")
    only, smoke = (json.loads(line) for line in lines(suite.files["history"]))
    assert only["groups"] == ["alpha"] and only["smoke"] is False and len(only["figures"]) == 2
    assert smoke["smoke"] is True and smoke["figures"][0]["value"] == 10.0
    suite("--no-record")
    assert len(lines(suite.files["history"])) == 2


def _row(n: int, **extra) -> dict:
    row = {key: None for key in history.ROW_KEYS}
    row.update(
        schema=history.SCHEMA,
        time=f"2026-12-{n + 1:02d}T00:00:00Z",
        source="test",
        label=f"t{n}",
        smoke=False,
        figures=[
            history.figure_row("store", "one append", 1000 + 100 * n, "events/s", 4000, target_ratio=0.5),
            history.figure_row("http", "p99", 20 + n, "ms", target_value=25, lower_is_better=True),
            history.figure_row("store", "the same against groups", 900, "events/s", 1800 + 100 * n),
            history.figure_row("boot", "first boot, no target", 40 + n, "s"),
        ],
    )
    row.update(extra)
    return row


def test_the_plot_draws_a_png_from_several_rows(tmp_path):
    from benchmarks import plot

    path, out = tmp_path / "results.jsonl", tmp_path / "out" / "history.png"
    for n in range(6):
        history.append(path, _row(n))
    history.append(path, _row(6, smoke=True))  # left out of the plot
    assert plot.main(["--history", str(path), "--out", str(out)]) == 0
    with Image.open(out) as png:
        png.verify()
    with Image.open(out) as png:
        assert png.format == "PNG" and png.width >= 800 and png.height >= 300
    drawn = plot.series([r for r in history.read(path)[0] if not r["smoke"]])
    assert [(s["name"], s["kind"], s["target"], len(s["points"])) for s in drawn] == [
        ("one append", "ratio", 0.5, 6),
        ("p99", "value", 25, 6),
        ("the same against groups", "ratio", None, 6),
    ]
    assert [met for _, _, met in drawn[1]["points"]] == [True] * 6  # 20..25 ms against <= 25
    assert [met for _, _, met in drawn[0]["points"]] == [False] * 6  # 0.25..0.375 against >= 0.5


def test_a_malformed_line_is_reported_with_its_number_not_a_traceback(tmp_path):
    path, out = tmp_path / "results.jsonl", tmp_path / "history.png"
    good = [history.encode(_row(n)) for n in range(3)]
    bad_schema = json.dumps({**_row(9), "schema": 99}) + "\n"
    path.write_text(good[0] + "{not json\n" + good[1] + "\n" + "[1, 2]\n" + bad_schema + good[2])
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.plot", "--history", str(path), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert f"{path}:2: not JSON" in run.stderr
    assert f"{path}:5: a JSON list, not an object" in run.stderr
    assert f"{path}:6: schema 99, expected 1" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 3  # the blank line 4 is no problem
    assert out.exists()  # drawn from the three good rows
    rows, problems = history.read(path)
    assert len(rows) == 3 and [p.line for p in problems] == [2, 5, 6]


def test_a_row_is_one_write_and_starts_its_own_line_after_a_torn_one(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    path.write_text('{"schema": 1, "time": "torn')  # a run killed in the middle of its write
    writes = []
    real_write = os.write

    def counting_write(fd, data):
        writes.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(history.os, "write", counting_write)
    history.append(path, _row(1))
    assert len(writes) == 1 and writes[0].startswith(b"\n") and writes[0].endswith(b"\n")
    assert writes[0].count(b"\n") == 2  # no newline inside the row
    rows, problems = history.read(path)
    assert len(rows) == 1 and [p.line for p in problems] == [1]


def test_the_committed_history_is_well_formed():
    rows, problems = history.read(REPO / "benchmarks" / "results.jsonl")
    assert not problems, [str(p) for p in problems]
    backfilled = [r for r in rows if r["source"].startswith("README ")]
    assert len(backfilled) >= 19
    assert all(r["recorded_in"] for r in backfilled)
    names = {f["name"] for r in rows for f in r["figures"]}
    assert "one append, one caller (SQLite)" in names and "p99 of the 202 at that load" in names
