"""Cosigning on PostgreSQL, with a witness that lies: an in-process daemon on a real PostgreSQL
database submits its checkpoints to an honest witness written from the spec and to one that answers
200 with junk and a cosignature line that does not verify. Only the honest cosignatures are kept,
verification counts them (and names the liar when two are required), and a cosignature of the
honest witness's key over another root (a fork it would have seen) fails verification."""

from __future__ import annotations

import base64
import random

import pytest
from sqlalchemy import insert

from tests.support.checkpoints import daemon_config
from tests.support.synthetic_log import server_ids, server_steps
from tests.support.tlog_witness import (
    EM_DASH,
    SpecWitness,
    cosignatures_migration_round_trip,
    key_id,
    write_log_key,
)
from tests.support.waiting import eventually_async
from wingman.engine.checkpoints.cosignature import WitnessKey
from wingman.engine.checkpoints.cosigned_verify import verify_cosignatures
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.events import NewEvent
from wingman.engine.store.database import create_engine
from wingman.engine.store.schema import cosignatures

pytestmark = pytest.mark.postgres
NODE = "test-node"  # tests.support.checkpoints signs as this node
ORIGIN = f"wingman/{NODE}"


class LyingWitness(SpecWitness):
    """Answers every submission 200 with a line of its name and key id whose signature is junk, a
    line of a key nobody configured, and 200 KB of noise."""

    def add_checkpoint(self, body: str) -> str:
        self.answers.append(None)  # type: ignore[arg-type]
        fake = key_id(self.name, self.typed_key) + (1).to_bytes(8, "big") + bytes(64)
        other = base64.b64encode(bytes(76)).decode()
        return f"{EM_DASH} {self.name} {base64.b64encode(fake).decode()}\n{EM_DASH} other/key {other}\n" + (
            "noise " * 40_000
        )


async def test_cosignatures_on_postgres_only_the_honest_ones_kept_and_verified(pg_url, tmp_path):
    log_key = write_log_key(tmp_path, NODE)
    honest, liar = SpecWitness("witness.test/honest", {ORIGIN: [log_key]}), LyingWitness("witness.test/liar")
    witnesses = [{"url": honest.serve(), "key": honest.vkey}, {"url": liar.serve(), "key": liar.vkey}]
    config = daemon_config(tmp_path, every_events=20, database_url=pg_url, witnesses=witnesses)
    daemon = Daemon(parse_config(config), runtimes={})
    await daemon.start()
    try:
        ids = server_ids(2, 5)
        steps = {s: server_steps(s, random.Random(s)) for s in ids}
        for i in range(120):
            typ, data, meta = next(steps[ids[i % 2]])
            await daemon.store.append(ids[i % 2], [NewEvent(type=typ, data=data, metadata=meta)])
        cp = daemon.checkpointer
        await eventually_async(
            lambda: cp.last is not None and honest.latest.get(ORIGIN, (0,))[0] == cp.last.size and len(liar.answers),
            30,
            "the honest witness to cosign the latest checkpoint",
        )
    finally:
        await daemon.stop()
        honest.close()
        liar.close()

    engine = create_engine(pg_url)
    try:
        keys = [WitnessKey.parse(honest.vkey), WitnessKey.parse(liar.vkey)]
        report = await verify_cosignatures(engine, keys, 1)
        [node] = report.nodes
        assert report.ok, report.problems
        assert node.vouched == {honest.name: honest.latest[ORIGIN][0]} and node.quorum_size == node.log_size >= 120
        two = await verify_cosignatures(engine, keys, 2)
        assert not two.ok and "only 1 of the 2 required witnesses" in two.problems[0] and liar.name in two.problems[0]

        # The honest witness's key over another root at a size the log has: a fork, named.
        size, stamp = 41, 1_700_000_000  # a size no checkpoint had
        root = bytes(32)
        text = f"{ORIGIN}\n{size}\n{base64.b64encode(root).decode()}\n"
        sig = honest.private.sign(f"cosignature/v1\ntime {stamp}\n{text}".encode())
        line = (
            f"{EM_DASH} {honest.name} " + base64.b64encode(honest_id(honest) + stamp.to_bytes(8, "big") + sig).decode()
        )
        async with engine.begin() as conn:
            row = {"node_id": NODE, "witness": honest.name, "size": size, "root": root.hex(), "timestamp": stamp}
            await conn.execute(insert(cosignatures), [row | {"line": line}])
        forked = await verify_cosignatures(engine, keys, 1)
        assert not forked.ok
        assert any("witness.test/honest cosigned size 41" in p and "a fork" in p for p in forked.problems), (
            forked.problems
        )
    finally:
        await engine.dispose()


def honest_id(w: SpecWitness) -> bytes:
    return key_id(w.name, w.typed_key)


async def test_migration_0009_both_ways_on_postgres(pg_url):
    assert await cosignatures_migration_round_trip(pg_url) == [True, False, True]
