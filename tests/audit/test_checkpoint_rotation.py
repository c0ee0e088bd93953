"""Key rotation on a real daemon's database: a checkpoint signed with the old key announces the new
one, verification follows it from either key, an announcement not signed by the key in force is
refused, and a rotation cut short by a crash is finished or forgotten at the next boot."""

from __future__ import annotations

import json
import stat

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.checkpoints import SignedLog, averdict, checkpoint_rows, daemon_config, sql
from wingman.engine.checkpoints import keys
from wingman.engine.checkpoints.format import encode_key, sign
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.events import Metadata, NewEvent, ServerSuspended, ServerUnsuspended

META = Metadata(actor="test")


async def _append(daemon: Daemon, n: int, stream: str = "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11") -> None:
    for i in range(n):
        record = ServerSuspended() if i % 2 == 0 else ServerUnsuspended()
        await daemon.store.append(stream, [NewEvent.of(record, META)])


async def test_rotation_is_followed_from_the_old_key_and_the_new(tmp_path):
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=10)), runtimes={})
    await daemon.start()
    first = daemon.checkpointer.public_key
    await _append(daemon, 30)
    old, new = await daemon.checkpointer.rotate()
    assert old == first and new == daemon.checkpointer.public_key != first
    await _append(daemon, 30)
    await daemon.stop()
    log = SignedLog(tmp_path, [], first)

    cps = [json.loads(c["body"]) for c in checkpoint_rows(log.db)]
    announce = next(c for c in cps if "next_key" in c)
    assert announce["key"] == first and announce["next_key"] == new
    assert all(c["key"] == new for c in cps if c["seq"] > announce["seq"])
    assert any(c["key"] == new for c in cps)
    # The key file now holds the new key, still 0600, and no rotation is left half done.
    assert encode_key(keys.read_key(log.key_file).public_key()) == new
    assert stat.S_IMODE(log.key_file.stat().st_mode) == 0o600 and not keys.next_path(log.key_file).exists()

    code, doc, text = await averdict(log, key=first, with_file=True)
    assert code == 0, text
    assert [k["key"] for k in doc["checkpoints"]["keys"]] == [first, new]
    assert "1 key rotation(s) followed" in text
    code, doc, text = await averdict(log, key=new, with_file=True)
    assert code == 0, text
    assert any("earlier keys of the chain" in w for w in doc["checkpoints"]["warnings"])

    # A restarted daemon signs with the new key and its checkpoints still follow.
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=10)), runtimes={})
    assert daemon.checkpointer.public_key == new
    await daemon.start()
    assert daemon.checkpointer.resumed.how == "resumed"
    await _append(daemon, 5)
    await daemon.stop()
    assert (await averdict(log, key=first, with_file=True))[0] == 0


async def test_an_announcement_signed_by_another_key_is_refused(tmp_path):
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=10)), runtimes={})
    await daemon.start()
    await _append(daemon, 25)
    await daemon.stop()
    log = SignedLog(tmp_path, [], daemon.checkpointer.public_key)
    # The attacker announces his own key from a checkpoint he signs himself, then signs on.
    attacker = Ed25519PrivateKey.generate()
    last = checkpoint_rows(log.db)[-1]
    body = json.loads(last["body"])
    announce = sign(
        attacker,
        body
        | {
            "seq": body["seq"] + 1,
            "key": encode_key(attacker.public_key()),
            "next_key": encode_key(attacker.public_key()),
        },
    )
    sql(
        log.db,
        (
            "INSERT INTO checkpoints (node_id, seq, size, body, signature, frontier, leaves) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                announce.node,
                announce.seq,
                announce.size,
                json.dumps(announce.body),
                announce.signature,
                last["frontier"],
                b"",
            ),
        ),
    )
    code, doc, _ = await averdict(log, key=log.key)
    assert code == 1
    problem = doc["checkpoints"]["first_problem"]
    assert problem["check"] == "key" and problem["checkpoint_seq"] == announce.seq


async def test_a_rotation_cut_short_is_finished_or_forgotten_at_boot(tmp_path):
    config = parse_config(daemon_config(tmp_path, every_events=10))
    daemon = Daemon(config, runtimes={})
    await daemon.start()
    await _append(daemon, 12)
    await daemon.stop()
    path, first = config.checkpoint_key_path, daemon.checkpointer.public_key

    # Crash after the new key was written, before any announcement: the old key stays.
    keys.prepare_next(path)
    daemon = Daemon(config, runtimes={})
    await daemon.start()
    assert daemon.checkpointer.public_key == first and not keys.next_path(path).exists()
    await _append(daemon, 3)
    await daemon.stop()

    # Crash after the announcement was stored, before the new key took the old one's place.
    daemon = Daemon(config, runtimes={})
    await daemon.start()
    nxt = keys.prepare_next(path)
    cp = daemon.checkpointer
    async with cp._lock:  # what rotate() does up to its last step
        cp._cut(next_key=nxt.public_key())
        assert await cp._flush()
    await daemon.store.close()  # the process dies here: no last checkpoint, no key switch
    await daemon.db.dispose()
    daemon = Daemon(config, runtimes={})
    await daemon.start()
    assert daemon.checkpointer.public_key == encode_key(nxt.public_key()) and not keys.next_path(path).exists()
    await _append(daemon, 4)
    await daemon.stop()
    code, doc, text = await averdict(SignedLog(tmp_path, [], first), key=first, with_file=True)
    assert code == 0, text
    assert len(doc["checkpoints"]["keys"]) == 2
