"""The daemon's checkpointer on real files: a restart after tampering does not launder the log, a
checkpoint file that cannot be written costs nothing but its copy, and the file catches up at boot
with checkpoints the table holds."""

from __future__ import annotations

import asyncio
import json

from tests.support.checkpoints import (
    SignedLog,
    averdict,
    build_signed_log,
    checkpoint_rows,
    daemon_config,
    forge_actor,
    sql,
)
from tests.support.waiting import eventually_async
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.events import Metadata, NewEvent, ServerSuspended


async def _restart(folder, **audit) -> Daemon:
    daemon = Daemon(parse_config(daemon_config(folder, 25, **audit)), runtimes={})
    await daemon.start()
    return daemon


async def test_a_restart_after_tampering_does_not_launder_the_log(tmp_path):
    log = await build_signed_log(tmp_path, total=120, servers=2)
    forged = forge_actor(log.db, log.ids[0])
    daemon = await _restart(tmp_path)  # the cheap boot check looks at the end of the log only
    await daemon.store.append("s-new", [NewEvent.of(ServerSuspended(), Metadata(actor="t"))])
    await daemon.stop()
    code, doc, _ = await averdict(log, key=log.key, with_file=True)
    assert code == 1 and doc["checkpoints"]["first_bad_position"] == forged["position"]

    sql(log.db, ("DELETE FROM events WHERE position > 100", ()))
    daemon = await _restart(tmp_path)
    assert daemon.checkpointer.resumed.how == "folded" and "no event at position" in daemon.checkpointer.resumed.problem
    await daemon.stop()  # signs the shorter log: the signed history went back, for all to see
    code, doc, _ = await averdict(log, key=log.key, with_file=True)
    checks = {p["check"] for p in doc["checkpoints"]["problems"]}
    assert code == 1 and {"truncation", "consistency"} <= checks


async def test_an_unwritable_checkpoint_file_costs_only_its_copy(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the checkpoint file's folder should be")
    daemon = await _restart(tmp_path, checkpoint_file=str(blocker / "checkpoints.jsonl"))
    for _ in range(60):
        await daemon.store.append("s1", [NewEvent.of(ServerSuspended(), Metadata(actor="t"))])
    await daemon.stop()
    assert len(checkpoint_rows(tmp_path / "var" / "wingman.db")) >= 1
    code, doc, text = await averdict(
        SignedLog(tmp_path, [], daemon.checkpointer.public_key), key=daemon.checkpointer.public_key
    )
    assert code == 0 and doc["checkpoints"]["not_yet_covered"] == 0, text


async def test_the_file_catches_up_at_boot(tmp_path):
    log = await build_signed_log(tmp_path, total=80, servers=2)
    lines = log.file.read_text().splitlines(keepends=True)
    log.file.write_text("".join(lines[:-2]))  # the daemon died between the table and the file
    daemon = await _restart(tmp_path)
    await daemon.stop()
    seqs = [json.loads(line)["checkpoint"]["seq"] for line in log.file.read_text().splitlines()]
    assert seqs == [c["seq"] for c in checkpoint_rows(log.db)]
    code, _, text = await averdict(log, key=log.key, with_file=True)
    assert code == 0, text


def test_a_key_file_others_may_read_is_refused(tmp_path):
    import subprocess
    import sys

    import yaml

    from tests.support.daemon import REPO
    from wingman.engine.checkpoints.keys import load_or_create

    key_file = tmp_path / "var" / "checkpoint-key.pem"
    load_or_create(key_file)
    key_file.chmod(0o644)
    config = tmp_path / "wingman.yml"
    config.write_text(yaml.safe_dump(daemon_config(tmp_path)))
    r = subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", "serve", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 2 and "chmod 600" in r.stderr, (r.stdout, r.stderr)
    assert not (tmp_path / "var" / "wingman.db").exists()


async def test_checkpoints_are_committed_by_the_logs_own_writer(tmp_path):
    """Under concurrent appends the checkpoints go through the log's writer: no second connection
    takes SQLite's write lock (the one that waits would sleep in SQLite's busy handler), and the
    last one, signed after the writer has drained at a clean stop, still reaches the table."""
    from sqlalchemy import event

    daemon = await _restart(tmp_path)
    write_transactions: list[str] = []
    event.listen(
        daemon.store.engine.sync_engine,
        "begin",
        lambda conn: write_transactions.append(  # what the SQLite backend's begin hook reads
            "BEGIN IMMEDIATE" if conn.get_execution_options().get("write_transaction") else "BEGIN"
        ),
    )

    async def appender(n: int) -> None:
        for _ in range(30):
            await daemon.store.append(f"s{n}", [NewEvent.of(ServerSuspended(), Metadata(actor="t"))])

    await asyncio.gather(*(appender(n) for n in range(20)))
    assert daemon.store.last_position >= 600
    # Every 25 events: the signer follows the writer.
    await eventually_async(
        lambda: daemon.checkpointer.last,
        60,
        "a checkpoint over 500 events",
        until=lambda last: last and last.size >= 500,
    )
    assert "BEGIN IMMEDIATE" not in write_transactions
    await daemon.stop()
    rows = checkpoint_rows(tmp_path / "var" / "wingman.db")
    assert rows and max(r["size"] for r in rows) == daemon.store.last_position
