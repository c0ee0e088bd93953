"""Cosigning witnesses (c2sp.org/tlog-witness): each durable checkpoint is submitted to the witnesses
of `audit.witnesses` with a consistency proof from the size each last cosigned, and the
cosignatures they return are kept (engine.checkpoints.cosigned). Not the older best-effort JSON
push of `audit.witness_url` (engine.checkpoints.witness).

One task per witness, each holding at most one checkpoint to send: a witness only needs the newest
(it vouches for every tree before it), so a slow or absent witness costs a coalesced slot, never a
growing queue, and nothing here is on the store's write path (the checkpointer only hands over the
checkpoint; the proof is computed from the tiles off the event loop, engine.checkpoints.tile_proofs).

A witness's answer is untrusted: it is read up to a bound, and only cosignatures that verify
against its configured key are kept. A refusal (403: it does not trust the log's key, 404: it does
not know the log, 422: the checkpoint is not consistent with what it cosigned, a fork or a
rollback) is logged at error level, and the daemon carries on.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog

from wingman.engine.checkpoints import cosigned
from wingman.engine.checkpoints.cosignature import WitnessKey, read_cosignatures
from wingman.engine.checkpoints.format import SignedCheckpoint
from wingman.engine.checkpoints.tile_proofs import consistency_from_tiles
from wingman.engine.checkpoints.tiles import TileLog
from wingman.engine.config_witnesses import CosigningWitnessConfig
from wingman.engine.store.event_store import EventStore

log = structlog.get_logger("wingman.checkpoints")

MAX_ANSWER = 64 * 1024  # a witness's answer read at most (a few signature lines are expected)
MAX_PROOF = 63  # lines, per the spec
RETRY_AFTER = (1.0, 5.0, 30.0, 60.0)  # seconds before sending the same checkpoint again, unanswered
_REFUSALS = {
    403: "it does not trust this log's key (after a key rotation, give it the new verifier key)",
    404: "it does not know this log's origin (add the log's verifier key to the witness)",
    422: "the checkpoint is not consistent with the tree it cosigned last: the log forked or was rolled back",
    400: "it found the request malformed",
}


@dataclass
class Submission:
    """What one add-checkpoint call came to (for the log line, and the tests' eyes)."""

    status: int  # 0: no answer (the witness could not be reached)
    cosigned: int = 0
    error: str = ""


class CosigningWitness:
    """One witness: its key, its client, the size it last cosigned, and the checkpoint to send."""

    def __init__(self, config: CosigningWitnessConfig, cosigners: Cosigners):
        self.key = WitnessKey.parse(config.key)
        self.url = config.url + "/add-checkpoint"
        self.timeout = config.timeout
        self.cosigners = cosigners
        self.cosigned_size: int | None = None  # as the witness last said (None: not known yet)
        self.pending: SignedCheckpoint | None = None
        self.failures = 0  # calls in a row that got no answer (or a 5xx)
        self.cosigned_total = 0  # cosignatures received and verified (for the metrics)
        self.refused: Counter[str] = Counter()  # answers other than a cosignature, by status ("unreachable")
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()  # set while nothing is taken to be sent
        self.idle.set()
        self._client = httpx.AsyncClient(
            timeout=config.timeout, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )
        self.task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.key.name

    def offer(self, signed: SignedCheckpoint) -> None:
        if self.pending is None or signed.size >= self.pending.size:
            self.pending = signed
        self.wake.set()

    async def run(self) -> None:
        while True:
            if self.pending is None:
                self.idle.set()
                await self.wake.wait()
            self.wake.clear()
            self.idle.clear()
            cp, self.pending = self.pending, None
            if cp is None or (self.cosigned_size is not None and cp.size <= self.cosigned_size) or cp.size == 0:
                continue
            try:
                done = await self.submit(cp)
            except (httpx.HTTPError, OSError, TimeoutError) as exc:
                done = Submission(0, error=str(exc) or type(exc).__name__)
            except Exception:
                log.exception("a checkpoint could not be submitted to a cosigning witness", witness=self.name)
                continue
            if done.status != 200:
                self.refused["unreachable" if done.status == 0 else str(done.status)] += 1
            if done.status == 0 or done.status >= 500:  # unreachable or failing: the same again, later
                wait = RETRY_AFTER[min(self.failures, len(RETRY_AFTER) - 1)]
                self.failures += 1
                if done.status == 0:
                    log.warning(
                        "a cosigning witness could not be reached; trying again",
                        witness=self.name,
                        url=self.url,
                        size=cp.size,
                        error=done.error,
                        retry_in_seconds=wait,
                    )
                self.offer_later(cp, wait)
            else:
                self.failures = 0

    def offer_later(self, cp: SignedCheckpoint, seconds: float) -> None:
        """Send `cp` again after a while, unless a newer checkpoint comes first."""
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, lambda: self.offer(cp) if self.pending is None else None)

    async def _post(self, body: str) -> tuple[int, str, str]:
        """(status, content type, answer) of add-checkpoint; the answer read up to MAX_ANSWER."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        # httpx's timeout bounds each read; this bounds the whole call (a witness dripping its answer).
        async with (
            asyncio.timeout(self.timeout),
            self._client.stream("POST", self.url, content=body.encode(), headers=headers) as resp,
        ):
            data = bytearray()
            async for chunk in resp.aiter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER:
                    break
            return (
                resp.status_code,
                resp.headers.get("content-type", ""),
                bytes(data[:MAX_ANSWER]).decode(errors="replace"),
            )

    async def submit(self, cp: SignedCheckpoint) -> Submission:
        note = self.cosigners.note_of(cp)
        text = note[: note.index("\n\n") + 1]  # the note text a cosignature signs
        old = self.cosigned_size or 0
        for attempt in (1, 2):
            proof = await self.cosigners.proof(old, cp.size)
            body = f"old {old}\n" + "".join(f"{p}\n" for p in proof) + "\n" + note
            status, kind, answer = await self._post(body)
            if status == 409 and kind.split(";")[0].strip() == "text/x.tlog.size":
                theirs = _size(answer)
                if theirs is None:
                    return self._refused(cp, old, status, "its 409 answer holds no tree size", answer)
                self.cosigned_size = theirs
                if attempt == 1 and theirs <= cp.size and theirs != old:
                    old = theirs  # a restart with a stale record, or another daemon: once more from its size
                    continue
                if theirs > cp.size:
                    why = f"it has cosigned a larger tree ({theirs}) than this checkpoint: the log was rolled back"
                    return self._refused(cp, old, status, why, answer)
                return self._refused(cp, old, status, f"it says it cosigned {theirs}", answer)
            if status != 200:
                return self._refused(cp, old, status, _REFUSALS.get(status, "an unexpected answer"), answer)
            good, wrong = read_cosignatures(answer, self.key, text)
            for problem in wrong:
                log.error(
                    "a cosigning witness sent a cosignature that does not verify", witness=self.name, problem=problem
                )
            if not good:
                return self._refused(cp, old, status, "no cosignature of its configured key verifies", answer)
            self.cosigned_size = cp.size
            self.cosigned_total += 1
            for cos in good[:1]:  # one per witness key and size is kept
                try:
                    await cosigned.save(self.cosigners.store, self.cosigners.node, cp.size, bytes.fromhex(cp.root), cos)
                except Exception as exc:  # noqa: BLE001 - any database failure: the witness holds it, log and go on
                    log.error("a cosignature could not be kept", witness=self.name, size=cp.size, error=str(exc))
            log.debug("checkpoint cosigned", witness=self.name, size=cp.size, old=old, proof_hashes=len(proof))
            return Submission(200, len(good))
        raise AssertionError("unreachable: the second attempt always returns")

    def _refused(self, cp: SignedCheckpoint, old: int, status: int, why: str, answer: str) -> Submission:
        log.error(
            "a cosigning witness refused the checkpoint",
            witness=self.name,
            url=self.url,
            status=status,
            size=cp.size,
            old=old,
            why=why,
            answer=answer[:200],
        )
        return Submission(status)

    async def close(self) -> None:
        await self._client.aclose()


def _size(answer: str) -> int | None:
    line = answer.split("\n", 1)[0].strip()
    return int(line) if line.isascii() and line.isdigit() and len(line) <= 20 else None


class Cosigners:
    """The node's cosigning witnesses: `offer` each durable checkpoint; `close` at shutdown."""

    def __init__(
        self,
        store: EventStore,
        node: str,
        witnesses: list[CosigningWitnessConfig],
        tiles: TileLog,
        note_of: Callable[[SignedCheckpoint], str],
    ):
        self.store, self.node, self.tiles, self.note_of = store, node, tiles, note_of
        self.witnesses = [CosigningWitness(w, self) for w in witnesses]

    async def start(self, last: SignedCheckpoint | None) -> None:
        """Each witness's last cosigned size from the table, then its task; the latest checkpoint is
        offered to those that have not cosigned it (a restarted daemon's)."""
        sizes = await cosigned.latest_sizes(self.store.engine, self.node)
        for w in self.witnesses:
            w.cosigned_size = sizes.get(w.name)
            w.task = asyncio.create_task(w.run(), name=f"cosigning-witness {w.name}")
            if last is not None:
                w.offer(last)

    def offer(self, signed: SignedCheckpoint) -> None:
        for w in self.witnesses:
            w.offer(signed)

    def counts(self) -> list[tuple[str, int, dict[str, int]]]:
        """(witness, cosignatures received, refusals by status) of each witness, since the start."""
        return [(w.name, w.cosigned_total, dict(w.refused)) for w in self.witnesses]

    async def proof(self, old: int, new: int) -> list[str]:
        """The base64 consistency proof from `old` to `new` leaves (none from 0 or to the same size)."""
        if old == 0 or old == new:
            return []
        hashes = await self.tiles.compute(new, lambda tree: consistency_from_tiles(tree, old, new))
        if len(hashes) > MAX_PROOF:
            raise ValueError(f"a consistency proof of {len(hashes)} hashes is longer than a witness takes")
        return [base64.b64encode(h).decode() for h in hashes]

    async def close(self, timeout: float = 5.0) -> None:
        """Give a submission under way (the shutdown checkpoint's) a moment, then stop."""
        for w in self.witnesses:
            if w.task is None:
                continue
            if not w.task.done() and (w.pending is not None or not w.idle.is_set()):
                try:
                    await asyncio.wait_for(_sent(w), timeout)
                except TimeoutError:
                    pass
            w.task.cancel()
            await asyncio.gather(w.task, return_exceptions=True)
            await w.close()


async def _sent(w: CosigningWitness) -> None:
    """Until the witness's task has sent what it was given and waits again."""
    while w.pending is not None or not w.idle.is_set():
        if w.idle.is_set():  # given, not yet taken: let the task run
            await asyncio.sleep(0)
        else:
            await w.idle.wait()
