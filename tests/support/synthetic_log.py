"""Synthetic but legal logs, written straight into the events table with correct hash chains.

For the replay benchmark and for tests that need a large log: a million events through the
store's group commit would take minutes, a bulk insert takes seconds. Each server goes through
realistic cycles (start, stop, kill, crash, failed pre-boot, configuration change) that the
statechart allows, with one clock that advances a fixed step per event.
"""

from __future__ import annotations

import random
import uuid as uuidlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.store.database import WRITE_TRANSACTION
from wingman.engine.store.hashing import GENESIS, event_hash
from wingman.engine.store.schema import events as events_table

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

Step = tuple[str, dict, dict]  # type, data, metadata


def definition(uuid: str, n: int = 0) -> dict:
    return {
        "settings": {
            "uuid": uuid,
            "meta": {"name": f"bench-{uuid[:8]}"},
            "invocation": f"game --port {25565 + n}",
            "environment": {"N": str(n)},
        },
        "process_configuration": {"startup": {"done": ["ready"]}, "stop": {"type": "command", "value": "stop"}},
    }


def _meta(op: str | None = None, cause: str | None = None, actor: str = "node-token") -> dict:
    return {
        "actor": actor,
        "channel": "http" if actor == "node-token" else "internal",
        "source_ip": None,
        "request_id": None,
        "operation_id": op,
        "cause": cause,
    }


def _sc(op, frm, to, trigger, cause, actor="node-token") -> Step:
    return (
        "state.changed",
        {"from_state": frm, "to_state": to, "trigger": trigger, "cause": cause, "operation_id": op},
        _meta(op, cause, actor),
    )


def server_steps(uuid: str, rng: random.Random) -> Iterator[Step]:
    """An endless legal history of one server."""
    yield "server.registered", {"definition": definition(uuid)}, _meta(actor="config")
    state, n = "offline", 0
    while True:
        op = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        roll = rng.random()
        if state == "offline":
            yield "power.requested", {"operation_id": op, "action": "start", "wait_seconds": 30}, _meta(op)
            yield "power.started", {"operation_id": op, "action": "start", "lock_acquired": True}, _meta(op)
            yield _sc(op, "offline", "starting", "start", "operator")
            if roll < 0.1:
                yield (
                    "preboot.check_failed",
                    {"check": "disk", "reason": "disk full", "fatal": True, "operation_id": op},
                    _meta(op),
                )
                yield _sc(op, "starting", "offline", "abort", "preboot_failed")
                yield (
                    "power.failed",
                    {"operation_id": op, "action": "start", "reason": "pre-boot: disk full"},
                    _meta(op),
                )
                continue
            yield (
                "process.started",
                {"runtime": "process", "pid": rng.randint(100, 60000), "container_id": None, "adopted": False},
                _meta(op),
            )
            yield _sc(op, "starting", "running", "ready", "process_ready")
            yield "power.succeeded", {"operation_id": op, "action": "start", "detail": "running"}, _meta(op)
            state = "running"
        elif roll < 0.6:
            yield "power.requested", {"operation_id": op, "action": "stop", "wait_seconds": 30}, _meta(op)
            yield "power.started", {"operation_id": op, "action": "stop", "lock_acquired": True}, _meta(op)
            yield _sc(op, "running", "stopping", "stop", "operator")
            yield (
                "process.exited",
                {"exit_code": 0, "signal": None, "oom_killed": False, "reason": None},
                _meta(op, "stopped", "daemon"),
            )
            yield _sc(op, "stopping", "offline", "exited", "stopped", "daemon")
            yield "power.succeeded", {"operation_id": op, "action": "stop", "detail": "stopped"}, _meta(op)
            state = "offline"
        elif roll < 0.8:
            yield "power.requested", {"operation_id": op, "action": "kill", "wait_seconds": 30}, _meta(op)
            yield "power.started", {"operation_id": op, "action": "kill", "lock_acquired": True}, _meta(op)
            yield (
                "process.exited",
                {"exit_code": None, "signal": "SIGKILL", "oom_killed": False, "reason": None},
                _meta(op, "killed", "daemon"),
            )
            yield _sc(op, "running", "offline", "exited", "killed", "daemon")
            yield "power.succeeded", {"operation_id": op, "action": "kill", "detail": "killed"}, _meta(op)
            state = "offline"
        elif roll < 0.9:
            yield (
                "process.exited",
                {"exit_code": 1, "signal": None, "oom_killed": False, "reason": None},
                _meta(None, "exited", "daemon"),
            )
            yield _sc(None, "running", "offline", "exited", "exited", "daemon")
            state = "offline"
        else:
            n += 1
            yield (
                "server.configuration_changed",
                {"definition": definition(uuid, n), "changed_keys": ["settings.environment.N", "settings.invocation"]},
                _meta(actor="node-token"),
            )


def server_ids(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(f"servers-{seed}")
    return [str(uuidlib.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


async def build_log(
    engine: AsyncEngine,
    total: int,
    servers: int = 10,
    seed: int = 0,
    batch: int = 20000,
    start: datetime = BASE_TIME,
    step: timedelta = timedelta(seconds=1),
) -> list[str]:
    """Append `total` events over `servers` servers (interleaved at random); returns the server ids.
    The events table must be empty of these servers (the chains start at version 1)."""
    rng = random.Random(seed)
    ids = server_ids(servers, seed)
    gens = {s: server_steps(s, random.Random(f"{seed}-{s}")) for s in ids}
    heads = {s: (0, GENESIS) for s in ids}
    rows: list[dict] = []
    t = start
    for i in range(total):
        sid = ids[i] if i < servers else rng.choice(ids)  # every server registers first
        typ, data, meta = next(gens[sid])
        version, prev = heads[sid]
        version += 1
        event_id = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        h = event_hash(
            stream_id=sid,
            version=version,
            event_id=event_id,
            type=typ,
            data=data,
            metadata=meta,
            recorded_at=t,
            prev_hash=prev,
        )
        rows.append(
            dict(
                stream_id=sid,
                version=version,
                event_id=event_id,
                type=typ,
                data=data,
                metadata=meta,
                recorded_at=t,
                prev_hash=prev,
                hash=h,
            )
        )
        heads[sid] = (version, h)
        t += step
        if len(rows) >= batch:
            await _insert(engine, rows)
            rows = []
    if rows:
        await _insert(engine, rows)
    return ids


async def _insert(engine: AsyncEngine, rows: list[dict]) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**WRITE_TRANSACTION)
        async with conn.begin():
            await conn.execute(insert(events_table), rows)


async def append_through_store(store, total: int, servers: int = 2, seed: int = 0) -> list[str]:
    """The same histories, appended one event per commit through a real EventStore (slow; for
    tests that want the store's own hashes, times and positions)."""
    from wingman.engine.events import NewEvent

    rng = random.Random(seed)
    ids = server_ids(servers, seed)
    gens = {s: server_steps(s, random.Random(f"{seed}-{s}")) for s in ids}
    for i in range(total):
        sid = ids[i] if i < servers else rng.choice(ids)
        typ, data, meta = next(gens[sid])
        await store.append(sid, [NewEvent(type=typ, data=data, metadata=meta)])
    return ids
