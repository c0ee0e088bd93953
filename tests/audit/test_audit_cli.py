"""`wingman audit ...` on a real database file: formats, options, and clear errors with exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.support.synthetic_log import build_log
from wingman.api.cli.audit import audit_app
from wingman.engine.store.database import create_engine, upgrade

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("cli") / "var"
    folder.mkdir()
    path = folder / "wingman.db"

    async def go():
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        ids = await build_log(engine, 1200, servers=2, seed=2)
        await engine.dispose()
        return ids

    return path, asyncio.run(go())


def cli(*args: str, env: dict | None = None):
    # A wide pretend terminal, so table headers are not wrapped.
    return runner.invoke(audit_app, list(args), env={"COLUMNS": "200", **(env or {})})


def ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_history_is_machine_output_when_piped(db):
    path, ids = db
    r = cli("history", ids[0], "--database", str(path))
    assert r.exit_code == 0, r.output
    lines = ndjson(r.stdout)
    assert lines[0]["what"].startswith("server registered") and lines[0]["version"] == 1
    assert {"time", "actor", "channel", "what", "why", "operation_id"} <= set(lines[0])
    assert all(line["server"] == ids[0] for line in lines)
    req = next(line for line in lines if line["type"] == "power.requested")
    assert req["what"].startswith("asked to ") and req["actor"] == "node-token" and req["channel"] == "http"


def test_history_formats_and_filters(db):
    path, ids = db
    r = cli(
        "history",
        ids[1],
        "-d",
        str(path),
        "--format",
        "csv",
        "--type",
        "state.changed",
        "--since",
        "2026-01-01T00:05:00Z",
        "--until",
        "2026-01-01T00:10:00+00:00",
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and all(row["type"] == "state.changed" for row in rows)
    assert all("2026-01-01T00:05:00Z" <= row["time"] <= "2026-01-01T00:10:00Z" for row in rows)
    assert all(" → " in row["what"] and row["why"] for row in rows)
    r = cli("history", ids[1], "-d", str(path), "--format", "json", "--type", "power.*")
    doc = json.loads(r.stdout)
    assert isinstance(doc, list) and doc and all(d["type"].startswith("power.") for d in doc)
    r = cli("history", ids[1], "-d", str(path), "--format", "table", "--type", "server.registered")
    assert r.exit_code == 0 and "what happened" in r.stdout and "server registered" in r.stdout


def test_state_at_a_position_and_a_time(db):
    path, ids = db
    r = cli("state", ids[0], "--at", "1", "-d", str(path))
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["exists"] and doc["state"] == "offline" and doc["version"] == 1
    assert doc["configuration"]["settings"]["uuid"] == ids[0]
    r = cli("state", ids[0], "--at", "2026-01-01T00:15:00Z", "-d", str(path))
    doc = json.loads(r.stdout)
    assert doc["at"] == {"time": "2026-01-01T00:15:00Z"} and doc["as_of"] <= "2026-01-01T00:15:00Z"
    assert doc["last_transition"]["cause"] and doc["last_transition"]["actor"]
    r = cli("state", ids[0], "--at", "2025-12-31T23:00:00Z", "-d", str(path), "--format", "table")
    assert r.exit_code == 0 and "did not exist yet" in r.stdout
    r = cli("state", ids[0], "-d", str(path), "--format", "table")
    assert r.exit_code == 0 and "power state" in r.stdout and "last transition" in r.stdout


def test_timeline_intervals_follow_each_other(db):
    path, ids = db
    r = cli("timeline", ids[1], "-d", str(path))
    assert r.exit_code == 0, r.output
    rows = ndjson(r.stdout)
    assert rows[0]["state"] == "offline" and rows[-1]["ongoing"] and rows[-1]["to"] is None
    for a, b in zip(rows, rows[1:], strict=False):
        assert a["to"] == b["from"] and a["ended_by"]["trigger"]
    r = cli("timeline", ids[1], "-d", str(path), "--format", "table")
    assert "why it ended" in r.stdout and "so far" in r.stdout


def test_verify_clean_log(db):
    path, _ = db
    r = cli("verify", "-d", str(path))
    assert r.exit_code == 0 and r.stdout.startswith("OK")
    r = cli("verify", "-d", str(path), "--format", "json")
    assert json.loads(r.stdout)["ok"] is True


def test_database_from_config_file_env_and_url(db, tmp_path):
    path, ids = db
    cfg = tmp_path / "wingman.yml"
    cfg.write_text(yaml.safe_dump({"token": "x" * 16, "system": {"root_directory": str(path.parent)}}))
    assert cli("verify", "--config", str(cfg)).exit_code == 0
    assert cli("verify", env={"WINGMAN_CONFIG": str(cfg)}).exit_code == 0
    assert cli("verify", "--database", f"sqlite:///{path}").exit_code == 0
    # --database wins over the config
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump({"token": "x" * 16, "system": {"root_directory": str(tmp_path / "none")}}))
    assert cli("verify", "--config", str(other)).exit_code == 2
    assert cli("verify", "--config", str(other), "--database", str(path)).exit_code == 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["history", "00000000-0000-4000-8000-000000000000"], "no server"),
        (["state", "{server}", "--at", "yesterday"], "RFC 3339"),
        (["state", "{server}", "--at", "2026-01-01T00:00:00"], "time zone"),
        (["history", "{server}", "--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"], "after"),
        (["timeline", "nope"], "no server"),
        (["export", "--since", "soon"], "RFC 3339"),
    ],
)
def test_bad_input_exits_2_with_a_message(db, args, words):
    path, ids = db
    r = cli(*[a.replace("{server}", ids[0]) for a in args], "--database", str(path))
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output


def test_missing_or_wrong_database_exits_2(tmp_path):
    r = cli("verify", "--database", str(tmp_path / "nope.db"))
    assert r.exit_code == 2 and "does not exist" in r.output
    assert not (tmp_path / "nope.db").exists()  # never created by asking
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    r = cli("verify", "--database", str(junk))
    assert r.exit_code == 2 and "cannot read the database" in r.output
    r = cli("verify", "--config", str(tmp_path / "missing.yml"))
    assert r.exit_code == 2 and "does not exist" in r.output


def test_as_a_process_and_through_the_main_cli(db):
    path, ids = db
    r = subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", "audit", "state", ids[0], "--at", "5", "--database", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["at"] == {"position": 5}
    # A reader that stops early (`| head`) is not an error.
    p = subprocess.Popen(
        [sys.executable, "-m", "wingman.api.cli", "audit", "export", "--database", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert json.loads(p.stdout.readline())["position"] == 1
    p.stdout.close()
    assert p.wait(timeout=60) == 0
    assert b"Traceback" not in p.stderr.read()


# -- output that reads (issue 28) ------------------------------------------------------------------

BORDERS = str.maketrans({c: " " for c in "│┃┏┓┗┛┡┩┠┨━─┳┻╇╈┼┬┴└┘┌┐├┤"})


def audit(*args: str, columns: int) -> str:
    """`wingman audit ...` as a process, its table at a terminal this wide."""
    r = subprocess.run(
        [sys.executable, "-m", "wingman.api.cli.audit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": str(columns), "TERM": "dumb"},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize(
    "command, whole, text",
    [
        ("history", ("time", "actor", "channel"), ("what", "why")),
        ("timeline", ("from", "to", "state"), ("why_it_ended",)),
    ],
)
def test_tables_keep_words_whole_at_any_width(db, command, whole, text, columns):
    """No word is broken mid-word, and the columns read whole (times, actors, channels) are on one line."""
    path, ids = db
    shown = audit(command, ids[0], "-d", str(path), "-F", "table", columns=columns)
    rows = ndjson(audit(command, ids[0], "-d", str(path), "-F", "ndjson", columns=columns))
    words = {w.rstrip(":") for row in rows for k in text for w in str(row.get(k) or "").split()}
    words |= {
        w for row in rows for k in whole for w in str(row.get(k) or "").replace("T", " ").replace("Z", "").split()
    }
    words |= set(
        "History Timeline of time (UTC) actor channel what happened why from to state how long it ended "
        "so far now".split()
    ) | {ids[0]}
    lines = shown.translate(BORDERS).splitlines()
    assert max(len(line.rstrip()) for line in lines) <= columns
    broken = {w for line in lines for w in line.split() if w.rstrip(":") not in words and not w[0].isdigit()}
    assert not broken, broken
    for row in rows[:50]:  # each whole column as a whole on some line
        for k in whole:
            value = str(row[k] or "now").replace("T", " ")[:19]
            assert value in shown, value


def test_a_terminal_is_paged_only_when_asked(db, tmp_path):
    """On a terminal, `history` prints its table and exits; with --pager it goes through $PAGER."""
    import os
    import pty
    import select

    path, ids = db
    marker = tmp_path / "paged"

    def on_a_terminal(*extra: str) -> int:
        master, slave = pty.openpty()
        p = subprocess.Popen(
            [sys.executable, "-m", "wingman.api.cli.audit", "history", ids[0], "-d", str(path), *extra],
            cwd=ROOT,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "TERM": "dumb", "PAGER": f"cat > {marker}"},
        )
        os.close(slave)
        while True:  # read what it prints, so it never blocks on a full terminal
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, "the command sat there"
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        os.close(master)
        return p.wait(timeout=60)

    assert on_a_terminal() == 0 and not marker.exists()
    assert on_a_terminal("--pager") == 0 and "History of" in marker.read_text()


@pytest.mark.parametrize("command", ["history", "timeline", "state", "verify", "export"])
def test_format_is_big_f_and_every_offered_format_works(db, command):
    """-f is --follow elsewhere, so --format is -F; every format the help offers is one the command writes."""
    path, ids = db
    args = [command] + ([ids[0]] if command in ("history", "timeline", "state") else []) + ["-d", str(path)]
    r = cli(*args, "-f", "json")
    assert r.exit_code == 2 and "No such option: -f" in r.output
    help_text = " ".join(cli(command, "--help").output.split())
    offered = set(re.findall(r"\b(auto|table|json|ndjson|csv)\b", help_text.split("--format", 1)[1][:200]))
    assert offered
    for fmt in offered:
        r = cli(*args, "-F", fmt)
        assert r.exit_code == 0, (fmt, r.output)
    if command in ("state", "verify"):
        assert "csv" not in offered and cli(*args, "-F", "csv").exit_code == 2


def test_state_table_shows_what_an_operator_reads(db):
    path, ids = db
    r = cli("state", ids[0], "-d", str(path), "-F", "table")
    assert r.exit_code == 0, r.output
    for label in ("power state", "name", "runtime", "command", "limits", "restart policy"):
        assert label in r.stdout
    assert "bench-" in r.stdout and '"settings"' not in r.stdout and "--format json" in r.stdout
    doc = json.loads(cli("state", ids[0], "-d", str(path), "-F", "json").stdout)
    assert doc["configuration"]["settings"]["uuid"] == ids[0]  # the whole configuration, as JSON


def greedy_breaks(lines: list[str], start: int, width: int) -> list[tuple[str, str]]:
    """Consecutive lines of one text wrapped at the width where the next line's first word would have
    fit on the line before: a break the text itself brought (a docstring's), not the wrapping."""
    bad = []
    for a, b in zip(lines, lines[1:], strict=False):
        if a[:start].strip() and not b[:start].strip() or not a[:start].strip() and not b[:start].strip():
            words = b[start:].split()
            if a[start:].strip() and words and len(a.rstrip()) + 1 + len(words[0]) <= width:
                bad.append((a, b))
    return bad


@pytest.mark.parametrize(
    "module, args",
    [
        ("wingman.api.cli.audit", ["--help"]),
        ("wingman.api.cli.audit", ["verify", "--help"]),
        ("wingman.api.cli.audit", ["history", "--help"]),
        ("wingman.api.cli.audit", ["prove", "--help"]),
        ("wingman.api.cli.diagram", ["--help"]),
        ("wingman.api.cli.diagram", ["statechart", "--help"]),
        ("wingman.api.cli.diagram", ["check", "--help"]),
        ("wingman.api.cli", ["--help"]),
        ("wingman.api.cli", ["events", "--help"]),
        ("wingman.api.cli", ["rotate-key", "--help"]),
    ],
)
def test_help_reads_at_80_columns(module, args):
    """Help at 80 columns: choices and defaults whole, and no docstring line break shown."""
    r = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", "TERM": "dumb"},
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "…" not in out and "cs v" not in out
    lines = out.splitlines()
    prose = [line for line in lines if line and line[0] not in "│╭╰"]
    assert not greedy_breaks(prose, 0, 80 - 1)
    if "╭─ Commands" in out:
        box = lines[lines.index(next(x for x in lines if x.startswith("╭─ Commands"))) + 1 :]
        box = [x[1:-1] for x in box[: next(i for i, x in enumerate(box) if x.startswith("╰"))]]
        start = len(box[0]) - len(box[0][1:].lstrip().split(" ", 1)[1].lstrip()) if box else 0
        assert not greedy_breaks(box, start, len(box[0]) - 1)
