"""`wingman db migrate-to URL`, as an operator runs it: a node's SQLite log (signed checkpoints,
then 100,000 events) copied into a real PostgreSQL database by the command, killed mid-copy,
run again to the end, verified, and then run on by a daemon."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pexpect
import pytest
from sqlalchemy.engine import make_url

from tests.support.checkpoints import build_signed_log, daemon_config
from tests.support.synthetic_log import build_log
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.events import NewEvent
from wingman.engine.store.database import create_engine, upgrade

pytestmark = pytest.mark.postgres

TOTAL = 100_000
BATCH = 2_000


def wingman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


async def connect(url: str) -> asyncpg.Connection:
    u = make_url(url)
    return await asyncpg.connect(host=u.query["host"], port=int(u.query["port"]), user=u.username, database=u.database)


async def fill(db: Path, total: int, seed: int) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await upgrade(engine)
        await build_log(engine, total, servers=10, seed=seed)
    finally:
        await engine.dispose()


def sqlite_rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def pg_rows(url: str, sql: str) -> list[tuple]:
    conn = await connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def count_when_killed(url: str, command: list[str]) -> int:
    """Start the command, SIGKILL it as soon as the target holds some events, and return how many."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    conn = await connect(url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if await conn.fetchval("SELECT count(*) FROM events"):
                    break
            except asyncpg.UndefinedTableError:  # the command has not made the schema yet
                pass
            await asyncio.sleep(0.005)
        assert proc.poll() is None, f"the copy ended before it could be interrupted: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()


async def test_migrate_interrupted_resumed_verified_then_run_on(tmp_path, pg_url):
    log = await build_signed_log(tmp_path / "node", total=300, servers=3, every_events=25)  # signed checkpoints
    await fill(log.db, TOTAL - 300, seed=7)
    command = [sys.executable, "-m", "wingman.api.cli", "db", "migrate-to", pg_url, "--database", str(log.db)]

    held = await count_when_killed(pg_url, [*command, "--batch", str(BATCH)])
    # What the kill left is whole batches, gapless from the first position.
    assert 0 < held < TOTAL and held % BATCH == 0, held
    assert await pg_rows(pg_url, "SELECT count(*), max(position) FROM events") == [(held, held)]

    resumed = await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(log.db))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{TOTAL} events in the source: {held} already in the target, {TOTAL - held} copied" in resumed.stdout
    assert "12 checkpoints copied" in resumed.stdout

    keys = "SELECT position, stream_id, version, event_id, hash, prev_hash FROM events ORDER BY position"
    assert await pg_rows(pg_url, keys) == sqlite_rows(log.db, keys)
    signed = "SELECT seq, size, signature, body FROM checkpoints ORDER BY seq"
    assert await pg_rows(pg_url, signed) == sqlite_rows(log.db, signed)

    again = await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(log.db))
    assert again.returncode == 0, again.stderr
    assert f"{TOTAL} already in the target, 0 copied" in again.stdout and "0 checkpoints copied" in again.stdout

    verify = await asyncio.to_thread(wingman, "audit", "verify", "--database", pg_url, "--key", log.key)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"OK: the log checks out: {TOTAL} events" in verify.stdout

    # The daemon, pointed at the URL, carries the log on: each stream's next event continues its
    # chain from the copied tip (at boot it settles the operations the synthetic log left open).
    tips = "SELECT stream_id, max(version), (array_agg(hash ORDER BY version DESC))[1] FROM events GROUP BY stream_id"
    copied_tips = {s: (v, h) for s, v, h in await pg_rows(pg_url, tips)}
    daemon = Daemon(parse_config(daemon_config(log.folder, database_url=pg_url)), runtimes={})
    await daemon.start()
    try:
        await daemon.store.append(log.ids[0], [NewEvent(type="server.deleted", data={}, metadata={"actor": "test"})])
    finally:
        await daemon.stop()
    first_new = await pg_rows(
        pg_url,
        f"SELECT DISTINCT ON (stream_id) stream_id, version, prev_hash FROM events WHERE position > {TOTAL} "
        "ORDER BY stream_id, version",
    )
    assert log.ids[0] in {s for s, _, _ in first_new}
    for s, version, prev in first_new:
        assert (version - 1, prev) == copied_tips[s]
    verify = await asyncio.to_thread(wingman, "audit", "verify", "--database", pg_url, "--key", log.key)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Run once more now that the daemon wrote past the source's end: nothing copied, nothing refused.
    after = await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(log.db))
    assert after.returncode == 0, after.stderr
    assert "0 copied" in after.stdout and "more events after the source's last" in after.stdout


async def test_a_target_with_another_history_is_refused(tmp_path, pg_url):
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    await fill(ours, 3_000, seed=1)
    await fill(theirs, 1_000, seed=2)
    first = await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(theirs))
    assert first.returncode == 0, first.stderr

    refused = await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(ours))
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refused" in refused.stderr and "position 1" in refused.stderr and "another history" in refused.stderr
    assert await pg_rows(pg_url, "SELECT count(*) FROM events") == [(1_000,)]


async def test_one_changed_value_in_the_copy_is_found_before_anything_is_written(tmp_path, pg_url):
    db = tmp_path / "node.db"
    await fill(db, 5_000, seed=3)
    assert (await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(db))).returncode == 0
    await fill_more_and_edit(db, pg_url)

    refused = await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(db))
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "position 4321" in refused.stderr and "metadata" in refused.stderr
    assert await pg_rows(pg_url, "SELECT count(*) FROM events") == [(5_000,)]


async def fill_more_and_edit(db: Path, url: str) -> None:
    """The source grows by another server's events; in the target, one event's metadata gains a
    space (the same JSON value, another text: not the bytes that were hashed)."""
    await fill(db, 500, seed=4)
    conn = await connect(url)
    try:
        await conn.execute("UPDATE events SET metadata = (metadata::text || ' ')::json WHERE position = 4321")
    finally:
        await conn.close()


async def test_a_progress_bar_on_a_terminal_and_one_line_when_piped(tmp_path, pg_url):
    db = tmp_path / "node.db"
    await fill(db, 5_000, seed=5)
    args = ["-m", "wingman.api.cli", "db", "migrate-to", pg_url, "--database", str(db), "--batch", "1000"]
    child = pexpect.spawn(sys.executable, args, encoding="utf-8", timeout=120, dimensions=(40, 160))
    await asyncio.to_thread(child.expect, pexpect.EOF)
    child.close()
    seen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
    assert child.exitstatus == 0, seen
    assert "copying events" in seen and "5000/5000" in seen and "100%" in seen, seen

    with_password = pg_url.replace("://postgres@", "://postgres:hunter2@")  # trust: any password will do
    piped = await asyncio.to_thread(wingman, "db", "migrate-to", with_password, "--database", str(db))
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr
    assert piped.stdout.startswith("5000 events in the source: 5000 already in the target, 0 copied")
    assert "hunter2" not in piped.stdout and "postgres:***@" in piped.stdout


async def test_the_witnesses_cosignatures_travel_with_the_log(tmp_path, pg_url):
    log = await build_signed_log(tmp_path / "node", total=60, servers=2, every_events=20)
    kept = [
        ("test-node", "witness.test/one", 20, "ab" * 32, 1_796_000_000, "\u2014 witness.test/one AAAA"),
        ("test-node", "witness.test/one", 40, "cd" * 32, 1_796_000_100, "\u2014 witness.test/one BBBB"),
        ("test-node", "witness.test/two", 40, "cd" * 32, 1_796_000_101, "\u2014 witness.test/two CCCC"),
    ]
    con = sqlite3.connect(log.db)
    with con:
        con.executemany("INSERT INTO cosignatures VALUES (?, ?, ?, ?, ?, ?)", kept)
    con.close()
    rows = "SELECT node_id, witness, size, root, timestamp, line FROM cosignatures ORDER BY witness, size"
    for _ in range(2):  # a second run copies nothing twice
        done = await asyncio.to_thread(wingman, "db", "migrate-to", pg_url, "--database", str(log.db))
        assert done.returncode == 0, done.stderr
        assert await pg_rows(pg_url, rows) == sqlite_rows(log.db, rows) == sorted(kept, key=lambda r: (r[1], r[2]))
