"""Long CLI work shows a progress bar on a terminal (standard error) and nothing extra when piped:
`wingman audit export`, `wingman audit verify` and the replay of `wingman audit state` on a real
SQLite log of tens of thousands of events, run piped (subprocess) and in a real pseudo-terminal
(pexpect)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys

import pexpect  # the `test` extra: missing, the module fails to collect rather than skip
import pytest

from tests.support.daemon import REPO
from tests.support.synthetic_log import build_log, server_ids
from wingman.engine.audit.export import export
from wingman.engine.store.database import create_engine, upgrade

EVENTS = 40_000
DEADLINE = 120
BAR = re.compile(r"(exporting|verifying the log)\W+(\d+)/40000 events")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("progress") / "wingman.db"

    async def go() -> str:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
            await build_log(engine, EVENTS, servers=20, seed=11)
            out = io.StringIO()
            await export(engine, out)  # the export as the engine writes it, with no CLI around it
            return out.getvalue()
        finally:
            await engine.dispose()

    return path, asyncio.run(go())


def env() -> dict:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")},
        "COLUMNS": "120",
        "TERM": "xterm-256color",
    }


def piped(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", *args],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        stdin=subprocess.DEVNULL,
    )


def in_terminal(*args: str) -> tuple[str, int]:
    """What a person sees in a terminal (standard output and error both on it), and the exit code."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "wingman.api.cli", *args],
        cwd=str(REPO),
        env=env(),
        encoding="utf-8",
        codec_errors="replace",
        timeout=DEADLINE,
        dimensions=(40, 120),
    )
    child.expect(pexpect.EOF)
    child.close()
    return ANSI.sub("", child.before), child.exitstatus


def test_piped_export_and_verify_write_what_they_always_wrote(db, tmp_path):
    path, exported = db
    r = piped("audit", "export", "-d", str(path))
    assert r.returncode == 0 and r.stdout == exported and r.stderr == ""

    out = tmp_path / "log.ndjson"
    r = piped("audit", "export", "-d", str(path), "-o", str(out))
    assert r.returncode == 0 and r.stdout == ""
    assert r.stderr == f"exported {EVENTS} events to {out}\n"
    assert out.read_text() == exported

    r = piped("audit", "verify", "-d", str(path))
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith(f"OK: the log checks out: {EVENTS} events in 20 streams")


def test_a_terminal_sees_the_export_and_the_verification_progress(db, tmp_path):
    path, exported = db
    out = tmp_path / "log.ndjson"
    seen, code = in_terminal("audit", "export", "-d", str(path), "-o", str(out))
    assert code == 0, seen
    counts = [int(n) for what, n in BAR.findall(seen) if what == "exporting"]
    # it moved while the work went on, and got to the end
    assert any(0 < n < EVENTS for n in counts) and counts[-1] == EVENTS, seen[-2000:]
    assert counts == sorted(counts)
    assert f"exported {EVENTS} events to" in seen
    assert out.read_text() == exported  # the bar went to the terminal, not into the file

    seen, code = in_terminal("audit", "verify", "-d", str(path))
    assert code == 0, seen
    assert [int(n) for what, n in BAR.findall(seen) if what == "verifying the log"][-1] == EVENTS, seen[-2000:]
    assert "OK: the log checks out" in seen


def test_an_export_to_the_terminal_itself_has_no_bar_to_tear_its_lines(db):
    path, _ = db
    since = ("--since", "2026-01-01T11:00:00Z")  # the last 400 events: a screenful or so
    seen, code = in_terminal("audit", "export", "-d", str(path), *since)
    assert code == 0
    assert "exporting" not in seen and "/40000" not in seen
    expected = piped("audit", "export", "-d", str(path), *since).stdout
    assert expected.count("\n") == 400 and seen.replace("\r\n", "\n") == expected


def test_a_replay_pulses_on_a_terminal_and_is_silent_when_piped(db):
    path, _ = db
    server = server_ids(20, 11)[0]
    r = piped("audit", "state", server, "-d", str(path), "-F", "json")
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["server"] == server

    seen, code = in_terminal("audit", "state", server, "-d", str(path))
    assert code == 0, seen
    assert f"replaying the log of {server}" in seen and "━" in seen  # the bar, with no count to give
    assert "power state" in seen.split(f"replaying the log of {server}")[-1]  # the table, after the bar
