"""The benchmark suite's smoke run: every figure is produced, at small sizes, through the one
command the README gives. Speed is never judged here (benchmarks/README.md)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.daemon import REPO

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.timeout(900)]


def test_the_smoke_run_produces_every_figure(tmp_path):
    out = tmp_path / "smoke.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")}
    run = subprocess.run(
        ["bash", "benchmarks/run", "--smoke", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=880,
    )
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    doc = json.loads(out.read_text())
    assert doc["smoke"] is True and doc["machine"]["cores"] and doc["machine"]["packages"]["sanic"]
    from benchmarks.suite.__main__ import GROUPS

    assert set(doc["groups"]) == set(GROUPS)
    figures = [f for group in doc["groups"].values() for f in group]
    problems = [(f["name"], f["error"]) for f in figures if f["error"] is not None or f["ours"] is None]
    assert not problems, problems
    assert len(figures) >= 20
    for name in (
        "one append",
        "empty thread round trip",
        "group commit, 200 appenders (SQLite)",
        "appenders, on a log of",
        "PostgreSQL",
        "accepted kill requests/s",
        "p99 of the 202",
        "full replay",
        "state at a random point",
        "second boot",
        "RSS",
        "start latency",
        "kill latency",
        "Docker start latency",
    ):
        assert any(name in f["name"] for f in figures), name
    assert "SMOKE RUN" in run.stdout and "ratio" in run.stdout  # the table was printed
