"""A key rotation seen by a cosigning witness: notes signed with the new key are refused (403: it
does not trust it) and counted, the old cosignatures stay; once the witness's operator adds the new
verifier key, the next checkpoint is cosigned with a proof from the last size it cosigned, so the
tree it vouches for goes on across the rotation. In-process daemon on SQLite, witness from the spec."""

from __future__ import annotations

from tests.support.checkpoints import daemon_config
from tests.support.tlog_witness import Histories, SpecWitness, log_vkey, write_log_key
from tests.support.waiting import eventually_async
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon

NODE = "test-node"  # tests.support.checkpoints signs as this node
ORIGIN = f"wingman/{NODE}"


async def test_after_a_rotation_the_witness_refuses_until_told_the_new_key(tmp_path):
    w = SpecWitness("witness.test/r", {ORIGIN: [write_log_key(tmp_path, NODE)]})
    witnesses = [{"url": w.serve(), "key": w.vkey}]
    daemon = Daemon(
        parse_config(daemon_config(tmp_path, every_events=20, every_seconds=0.2, witnesses=witnesses)), runtimes={}
    )
    await daemon.start()
    try:
        cp, log = daemon.checkpointer, Histories()

        def cosigned_latest() -> bool:
            return cp.last is not None and not cp.uncovered and w.latest.get(ORIGIN, (0,))[0] == cp.last.size

        await log.append(daemon, 40)
        await eventually_async(cosigned_latest, 30, lambda: f"cosigned: {w.answers}")

        await cp.rotate()
        await eventually_async(cosigned_latest, 30, lambda: f"the announcement cosigned: {w.answers}")
        announced = w.latest[ORIGIN][0]  # signed with the old key, which the witness trusts
        await log.append(daemon, 40)
        await eventually_async(  # the daemon counted the refusal (the witness said it first)
            lambda: cp.witness_counts()[0][2].get("403", 0) >= 1, 30, lambda: f"a refusal: {w.answers[-3:]}"
        )
        assert any(a.status == 403 for a in w.answers) and cp.witness_counts()[0][0] == w.name
        assert w.latest[ORIGIN][0] == announced  # nothing signed with the new key was cosigned

        w.logs[ORIGIN].append(log_vkey(NODE, cp.public_key))  # the witness's operator adds the new key
        await log.append(daemon, 20)
        await eventually_async(cosigned_latest, 30, lambda: f"cosigned: {w.answers[-3:]}")
        refused_at = max(i for i, a in enumerate(w.answers) if a.status == 403)
        after = w.answers[refused_at + 1 :]
        assert all(a.status == 200 for a in after) and after[0].old == announced, w.answers  # the tree goes on
        assert after[-1].size == cp.last.size >= announced + 60
    finally:
        await daemon.stop()
        w.close()
