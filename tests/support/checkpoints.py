"""Helpers for the checkpoint tests (this module holds no tests): a real database file written by
a real Daemon with many checkpoints, raw SQL edits as an attacker who can write the database makes
them, and the CLI's verdict."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from tests.support.daemon import TOKEN
from tests.support.synthetic_log import server_ids, server_steps
from tests.support.waiting import eventually_async
from wingman.api.cli.main import app
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.events import NewEvent
from wingman.engine.store.hashing import event_hash

runner = CliRunner()


@dataclass
class SignedLog:
    folder: Path
    ids: list[str]
    key: str  # base64 public key

    @property
    def db(self) -> Path:
        return self.folder / "var" / "wingman.db"

    @property
    def file(self) -> Path:
        return self.folder / "var" / "checkpoints.jsonl"

    @property
    def key_file(self) -> Path:
        return self.folder / "var" / "checkpoint-key.pem"

    def copy(self, dst: Path) -> SignedLog:
        """A copy of the folder (database, checkpoint file, key), as an auditor is handed."""
        shutil.copytree(self.folder / "var", dst / "var")
        return SignedLog(dst, self.ids, self.key)


def daemon_config(
    folder: Path, every_events: int = 25, every_seconds: float = 3600, database_url: str | None = None, **audit
) -> dict:
    return {
        "token": TOKEN,
        "system": {"root_directory": str(folder / "var")},
        "database": {"url": database_url},
        "audit": {
            "checkpoint_every_events": every_events,
            "checkpoint_every_seconds": every_seconds,
            "node_id": "test-node",
            **audit,
        },
    }


async def build_signed_log(
    folder: Path,
    total: int = 300,
    servers: int = 3,
    every_events: int = 25,
    seed: int = 3,
    database_url: str | None = None,
) -> SignedLog:
    daemon = Daemon(parse_config(daemon_config(folder, every_events, database_url=database_url)), runtimes={})
    await daemon.start()
    cp = daemon.checkpointer
    try:
        rng = random.Random(seed)
        ids = server_ids(servers, seed)
        gens = {s: server_steps(s, random.Random(f"{seed}-{s}")) for s in ids}
        # `total` is the log's size: the daemon's own first events (the statechart it records at its
        # first start, engine.charts) are part of it.
        own = sum(daemon.store.stream_versions().values())
        for i in range(total - own):  # the synthetic histories, one event per commit through the store
            sid = ids[i] if i < servers else rng.choice(ids)
            typ, data, meta = next(gens[sid])
            await daemon.store.append(sid, [NewEvent(type=typ, data=data, metadata=meta)])
            if cp.uncovered >= every_events:
                await until(lambda: cp.uncovered < every_events)  # the checkpointer signs them
    finally:
        await daemon.stop()
    return SignedLog(folder, ids, cp.public_key)


async def until(fact, timeout: float = 30) -> None:
    """Wait for a fact (not for a time): yield to the loop, briefly, until it holds."""
    await eventually_async(fact, timeout, "the checkpointer to catch up", interval=0.001)


# -- the attacker's side ---------------------------------------------------------------------------


def rows(db: Path, where: str = "1=1", args=()) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM events WHERE {where} ORDER BY position", args)]
    finally:
        con.close()


def sql(db: Path, *statements: tuple[str, tuple]) -> None:
    con = sqlite3.connect(db)
    with con:
        for stmt, args in statements:
            con.execute(stmt, args)
    con.close()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def rehash_stream_from(db: Path, stream: str, version: int) -> None:
    """Recompute the hash chain of `stream` from `version` on, as a careful forger would."""
    evs = rows(db, "stream_id = ? AND version >= ?", (stream, version))
    prev = rows(db, "stream_id = ? AND version = ?", (stream, version - 1))
    prev_hash = prev[0]["hash"] if prev else "0" * 64
    updates = []
    for ev in evs:
        h = event_hash(
            stream_id=stream,
            version=ev["version"],
            event_id=ev["event_id"],
            type=ev["type"],
            data=json.loads(ev["data"]),
            metadata=json.loads(ev["metadata"]),
            recorded_at=_time(ev["recorded_at"]),
            prev_hash=prev_hash,
        )
        updates.append(("UPDATE events SET prev_hash = ?, hash = ? WHERE position = ?", (prev_hash, h, ev["position"])))
        prev_hash = h
    sql(db, *updates)


def forge_actor(db: Path, stream: str, new_actor: str = "panel-admin-alice") -> dict:
    """The issue's attack: the actor of a power.requested in the middle of a stream changed, and
    every later hash of that stream recomputed. Returns the forged row (before the edit)."""
    requests = rows(db, "stream_id = ? AND type = 'power.requested'", (stream,))
    target = requests[len(requests) // 2]
    meta = json.loads(target["metadata"])
    assert meta["actor"] != new_actor
    meta["actor"] = new_actor
    sql(db, ("UPDATE events SET metadata = ? WHERE position = ?", (json.dumps(meta), target["position"])))
    rehash_stream_from(db, stream, target["version"])
    return target


def checkpoint_rows(db: Path) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM checkpoints ORDER BY seq")]
    finally:
        con.close()


# -- the auditor's side ----------------------------------------------------------------------------


def verdict(log: SignedLog, *extra: str, key: str | None = None, with_file: bool = False) -> tuple[int, dict, str]:
    """`wingman audit verify` on the copy: (exit code, JSON report, text report)."""
    args = ["audit", "verify", "--database", str(log.db), *extra]
    if key is not None:
        args += ["--key", key]
    if with_file:
        args += ["--checkpoints", str(log.file)]
    js = runner.invoke(app, [*args, "--format", "json"], env={"COLUMNS": "200"})
    text = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert js.exit_code == text.exit_code, (js.output, text.output)
    return js.exit_code, json.loads(js.stdout), text.stdout


async def averdict(log: SignedLog, *extra: str, **kw) -> tuple[int, dict, str]:
    """`verdict` from inside a running loop (the CLI runs a loop of its own)."""
    return await asyncio.to_thread(verdict, log, *extra, **kw)
