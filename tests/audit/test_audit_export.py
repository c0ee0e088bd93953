"""Export streams the whole log in constant memory (measured on the real CLI process), and CSV and
NDJSON read back to the same records, which are the stored events (hashes re-check from them)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.synthetic_log import build_log
from wingman.engine.audit.export import read_csv, read_ndjson
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.hashing import event_hash

ROOT = Path(__file__).resolve().parents[2]
BIG, SMALL = 100_000, 20_000

# Runs `wingman audit export` in this process and reports its peak resident memory on stderr.
MEASURED = (
    "import resource, runpy, sys\n"
    "sys.argv = ['wingman-audit'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('wingman.api.cli.audit', run_name='__main__')\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def make_log(path: Path, events: int) -> None:
    async def go():
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await build_log(engine, events, servers=20, seed=11)
        await engine.dispose()

    asyncio.run(go())


def export(db: Path, out: Path, fmt: str) -> int:
    """Export through the CLI; returns the child's peak RSS in KiB."""
    r = subprocess.run(
        [sys.executable, "-c", MEASURED, "export", "--database", str(db), "--format", fmt, "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return int(r.stderr.split("MAXRSS_KB")[1].split()[0])


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    make_log(folder / "small.db", SMALL)
    make_log(folder / "big.db", BIG)
    return folder


def test_export_memory_does_not_grow_with_the_log(logs):
    small = export(logs / "small.db", logs / "small.ndjson", "ndjson")
    big = export(logs / "big.db", logs / "big.ndjson", "ndjson")
    grown = (logs / "big.ndjson").stat().st_size - (logs / "small.ndjson").stat().st_size
    assert grown > 40 * 2**20  # the output grew by tens of MiB ...
    assert big - small < 12 * 1024, (small, big)  # ... the process did not (KiB)
    big_csv = export(logs / "big.db", logs / "big.csv", "csv")
    assert big_csv - small < 12 * 1024, (small, big_csv)


def test_csv_and_ndjson_read_back_equal_and_match_the_database(logs):
    db = logs / "big.db"
    if not (logs / "big.csv").exists():
        export(db, logs / "big.ndjson", "ndjson")
        export(db, logs / "big.csv", "csv")
    con = sqlite3.connect(db)
    stored = con.execute(
        "SELECT position, stream_id, version, event_id, type, prev_hash, hash FROM events ORDER BY position"
    )
    count = 0
    with open(logs / "big.ndjson", encoding="utf-8") as nd, open(logs / "big.csv", encoding="utf-8", newline="") as cs:
        for a, b, row in zip(read_ndjson(nd), read_csv(cs), stored, strict=True):
            assert a == b
            assert (
                a["position"],
                a["stream_id"],
                a["version"],
                a["event_id"],
                a["type"],
                a["prev_hash"],
                a["hash"],
            ) == row
            if count % 997 == 0:  # the export alone is enough to re-check the chain's hashes
                assert (
                    event_hash(
                        stream_id=a["stream_id"],
                        version=a["version"],
                        event_id=a["event_id"],
                        type=a["type"],
                        data=a["data"],
                        metadata=a["metadata"],
                        recorded_at=datetime.fromisoformat(a["recorded_at"]),
                        prev_hash=a["prev_hash"],
                    )
                    == a["hash"]
                )
            count += 1
    con.close()
    assert count == BIG


def test_export_since_only_newer_events(logs, tmp_path):
    out = tmp_path / "since.ndjson"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wingman.api.cli",
            "audit",
            "export",
            "--database",
            str(logs / "small.db"),
            "--since",
            "2026-01-01T01:00:00Z",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out.write_text(r.stdout)
    records = list(read_ndjson(r.stdout.splitlines()))
    assert records and all(rec["recorded_at"] >= "2026-01-01T01:00:00" for rec in records)
    assert len(records) == SMALL - 3600  # one event a second from midnight
