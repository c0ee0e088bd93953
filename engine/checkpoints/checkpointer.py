"""Signed checkpoints over the node's own events, made by the running daemon (a log of the node's
own in a shared database: engine.checkpoints.resume says which events are its leaves).

The tree is kept current by a store subscriber: the store calls it with each committed group, in
position order, on the event loop, and it only appends each event's hash (computed by the writer
from the event it was handed, not read back) to the compact range: a couple of SHA-256 per event
and nothing that awaits. The write path itself is not touched.

A task signs a checkpoint when `every_events` events are not yet covered, or `every_seconds`
after the first of them was committed, whichever comes first; and `stop()` signs a last one at a
clean shutdown, after the store's writer has drained. Each checkpoint goes to the checkpoints
table (with the tree's compact range and the leaves it added), then to the checkpoint file
(fsynced), then to the witness if one is configured. A copy that fails is retried with the next
checkpoint; signing never waits for a copy. Once in the table, the newest is offered to the
cosigning witnesses (engine.checkpoints.cosigning), which send it in tasks of their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wingman.engine.checkpoints import keys, storage
from wingman.engine.checkpoints.cosigning import Cosigners
from wingman.engine.checkpoints.format import SignedCheckpoint, encode_key, make_body, sign
from wingman.engine.checkpoints.note import checkpoint_note
from wingman.engine.checkpoints.resume import Resumed, resume_tree
from wingman.engine.checkpoints.tiles import TileLog
from wingman.engine.checkpoints.tree import CompactRange, leaf_hash
from wingman.engine.checkpoints.witness import Witness
from wingman.engine.config_witnesses import CosigningWitnessConfig
from wingman.engine.events import RecordedEvent
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.points import iso

log = structlog.get_logger("wingman.checkpoints")


class RotationFailed(Exception):
    """The announcement of a new key could not be stored; the old key stays in force."""


@dataclass
class CheckpointSettings:
    key_file: Path
    checkpoint_file: Path | None
    node_id: str
    every_events: int = 1000
    every_seconds: float = 1.0
    witness_url: str | None = None
    witness_headers: dict[str, str] = field(default_factory=dict)
    witnesses: list[CosigningWitnessConfig] = field(default_factory=list)  # cosigning witnesses


class Checkpointer:
    def __init__(self, store: EventStore, settings: CheckpointSettings):
        self.store, self.settings = store, settings
        self.key, self.key_created = keys.load_or_create(settings.key_file)
        self.tree = CompactRange()
        self.last: SignedCheckpoint | None = None
        self.resumed: Resumed | None = None
        self._uncovered: list[bytes] = []  # event hashes since the last checkpoint
        self._since: float | None = None  # when the first of them was committed (monotonic)
        self._seq = 0
        self._position = 0  # the log position of the tree's last leaf
        self._to_table: list[storage.CheckpointRow] = []
        self._to_file: list[SignedCheckpoint] = []
        self._witness = Witness(settings.witness_url, settings.witness_headers) if settings.witness_url else None
        # The node's tree as tiles: served by the API, and the cosigning witnesses' proofs come from it.
        self.tiles = TileLog(store.engine, settings.node_id)
        self.cosigners = Cosigners(store, settings.node_id, settings.witnesses, self.tiles, self.note_of)
        self._lock = asyncio.Lock()  # one signer at a time: the timer task, a rotation, stop()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def public_key(self) -> str:
        return encode_key(self.key.public_key())

    @property
    def uncovered(self) -> int:
        return len(self._uncovered)

    def witness_counts(self) -> list[tuple[str, int, dict[str, int]]]:
        """Each cosigning witness's cosignatures and refusals since the start (engine.metrics)."""
        return self.cosigners.counts()

    def note_of(self, signed: SignedCheckpoint) -> str:
        """The checkpoint as a C2SP signed note, signed with the key held now (engine.checkpoints.note)."""
        return checkpoint_note(signed, self.key)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume the tree to the log's end, then follow the store. Call after the store opened
        and before anything else appends."""
        await self._finish_rotation()
        file = self.settings.checkpoint_file
        node = self.settings.node_id
        file_seq = await asyncio.to_thread(storage.last_seq_in_file, file, node) if file else 0
        r = self.resumed = await resume_tree(self.store.engine, {self.public_key}, node, file_seq)
        self.tree, self.last, self._seq, self._uncovered = r.tree, r.last, r.last_seq, r.uncovered
        self._position = r.last_position
        if self._uncovered:
            self._since = time.monotonic()  # left uncovered by a daemon that did not stop cleanly
        if file and file_seq < r.last_seq:
            await self._catch_up_file(file, file_seq)
        self._unsubscribe = self.store.subscribe(self._on_commit)
        self._task = asyncio.create_task(self._run(), name="checkpointer")
        await self.cosigners.start(self.last)
        log.info(
            "checkpoints: tree ready",
            size=self.tree.size,
            how=r.how,
            events_read=r.folded,
            not_yet_covered=len(self._uncovered),
            public_key=self.public_key,
        )

    async def stop(self) -> None:
        """Sign a last checkpoint over everything committed. Call after the store's writer has
        drained (EventStore.close) and before its engine is disposed."""
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        async with self._lock:
            if self._uncovered or (self.last is None and self.tree.size):
                self._cut()
            await self._flush()
        if self._witness is not None:
            await self._witness.close()
        await self.cosigners.close()

    # -- following the store -----------------------------------------------------------------

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        was_empty = not self._uncovered
        for ev in events:
            data = bytes.fromhex(ev.hash)
            self.tree.append_hash(leaf_hash(data))
            self._uncovered.append(data)
            self._position = ev.position
        if was_empty:
            self._since = time.monotonic()
            self._wake.set()  # the task arms the timer
        elif len(self._uncovered) >= self.settings.every_events:
            self._wake.set()

    async def _run(self) -> None:
        every_n, every_t = self.settings.every_events, self.settings.every_seconds
        while not self._stopping:
            self._wake.clear()
            if self._uncovered:
                # Set whenever events are uncovered (_on_commit, start), cleared with them (_cut).
                assert self._since is not None
                left = self._since + every_t - time.monotonic()
                if len(self._uncovered) >= every_n or left <= 0:
                    try:
                        async with self._lock:
                            if self._uncovered:
                                self._cut()
                            ok = await self._flush()
                    except Exception:
                        log.exception("a checkpoint could not be made; trying again")
                        ok = False
                    if not ok:  # the database is unavailable: do not spin on it
                        await self._pause(every_t)
                    continue
                await self._pause(left)
            else:
                await self._wake.wait()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    # -- signing and copies -------------------------------------------------------------------

    def _cut(self, next_key: Ed25519PublicKey | None = None) -> SignedCheckpoint:
        """Sign the tree as it stands (no await in here: the subscriber cannot move it meanwhile)."""
        self._seq += 1
        body = make_body(
            seq=self._seq,
            size=self.tree.size,
            root=self.tree.root(),
            time=iso(datetime.now(UTC)),
            node=self.settings.node_id,
            key=self.key.public_key(),
            next_key=next_key,
        )
        signed = sign(self.key, body)
        self._to_table.append(storage.row(signed, self.tree.to_hex(), b"".join(self._uncovered), self._position))
        self._to_file.append(signed)
        self._uncovered, self._since, self.last = [], None, signed
        return signed

    async def _flush(self) -> bool:
        """Write what is pending: the table first, then the file and the witness. False when the
        table could not be written (it is retried with the next checkpoint)."""
        ok = True
        if self._to_table:
            rows = list(self._to_table)
            try:
                await storage.save(self.store, rows)
                del self._to_table[: len(rows)]
                if not self._to_table and self.last is not None:
                    self.cosigners.offer(self.last)  # durable now: the witnesses may hear of it
            except Exception as exc:  # noqa: BLE001 - any failure: keep the rows and go on signing
                log.error(
                    "checkpoints could not be written to the database; retrying with the next",
                    error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    pending=len(rows),
                )
                ok = False
        if self._to_file and self.settings.checkpoint_file is not None:
            lines = list(self._to_file)
            try:
                await asyncio.to_thread(storage.append_lines, self.settings.checkpoint_file, lines)
                del self._to_file[: len(lines)]
            except OSError as exc:
                log.error(
                    "checkpoints could not be appended to the checkpoint file; retrying with the next",
                    file=str(self.settings.checkpoint_file),
                    error=exc.strerror or str(exc),
                )
            if self._witness is not None:
                self._witness.send(lines)
        elif self._to_file:
            if self._witness is not None:
                self._witness.send(list(self._to_file))
            self._to_file.clear()
        return ok

    async def _catch_up_file(self, file: Path, file_seq: int) -> None:
        """Checkpoints the table holds but the file lacks (the daemon died between the two)."""
        missing = [
            s.signed
            for s in await storage.load(self.store.engine, with_leaves=False, node=self.settings.node_id)
            if s.signed is not None and s.problem is None and s.signed.seq > file_seq
        ]
        try:
            await asyncio.to_thread(storage.append_lines, file, missing)
        except OSError as exc:
            log.error("could not copy checkpoints to the checkpoint file", error=exc.strerror or str(exc))

    # -- key rotation --------------------------------------------------------------------------

    async def rotate(self) -> tuple[str, str]:
        """Move to a new key: a checkpoint signed with the current key announces it, and every
        checkpoint after that one is signed with the new key. Returns (old, new) public keys."""
        async with self._lock:
            if not await self._flush():
                raise RotationFailed("the database cannot take checkpoints now; the key was not rotated")
            new = keys.prepare_next(self.settings.key_file)
            before = (self._seq, list(self._uncovered), self._since, self.last)
            self._cut(next_key=new.public_key())
            if not await self._flush():  # the announcement is not stored: as if nothing happened
                del self._to_table[-1:], self._to_file[-1:]
                self._seq, self._uncovered, self._since, self.last = before
                keys.discard_next(self.settings.key_file)
                raise RotationFailed("the announcement of the new key could not be stored; the key was not rotated")
            old = self.public_key
            self.key = new
            keys.commit_next(self.settings.key_file)
            log.info("checkpoint key rotated", old_key=old, new_key=self.public_key, seq=self._seq)
            return old, self.public_key

    async def _finish_rotation(self) -> None:
        """A rotation the last daemon left half done (see engine.checkpoints.keys)."""
        nxt = keys.pending_next(self.settings.key_file)
        if nxt is None:
            return
        announced = encode_key(nxt.public_key())
        latest = await storage.latest(self.store.engine, self.settings.node_id)
        if (
            latest is not None
            and latest.signed is not None
            and announced in (latest.signed.next_key, latest.signed.key)
        ):
            keys.commit_next(self.settings.key_file)
            self.key = nxt
            log.info("checkpoint key rotation completed at boot", new_key=announced)
        else:
            keys.discard_next(self.settings.key_file)
