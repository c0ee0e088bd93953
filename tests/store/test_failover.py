"""Failover under load: a daemon on a primary with a synchronous standby, through a multi-host
URL (`target_session_attrs=read-write`), takes power requests at about 200 a second from a real
HTTP client while the primary is SIGKILLed and the standby promoted (as Patroni would).

What an operator relies on: every request answered 202 is in the promoted database with exactly
one outcome; during the gap the API says 503 (never another 5xx); the daemon carries on, without
a restart, on the new primary; the log verifies. The seconds without service are measured and
printed, not asserted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid as uuidlib
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.daemon import TOKEN, definition, opened_store
from tests.support.failover import Sent, drive, gap
from tests.support.waiting import eventually_async
from wingman.engine.events import NewEvent
from wingman.engine.store.backends.postgres import LOG_LOCK_KEY
from wingman.engine.store.event_store import StoreUnavailable

pytestmark = pytest.mark.postgres

OUTCOMES = ("power.succeeded", "power.failed", "power.rejected", "power.cancelled", "power.interrupted")


async def outcomes(url: str, operations: set[str], timeout: float = 30) -> dict[str, list[str]]:
    """Each operation's outcome events in the database, once every operation has one."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.query["host"], port=int(u.query["port"]), user="postgres", database=u.database)
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = await conn.fetch(
                "SELECT metadata->>'operation_id' AS op, type FROM events WHERE type = ANY($1::text[])", list(OUTCOMES)
            )
            found: dict[str, list[str]] = {}
            for r in rows:
                found.setdefault(r["op"], []).append(r["type"])
            if operations <= found.keys() or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def scalar(url: str, sql: str, *args: object) -> Any:
    u = make_url(url)
    conn = await asyncpg.connect(host=u.query["host"], port=int(u.query["port"]), user="postgres", database=u.database)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_a_failover_under_load_loses_no_acknowledged_request(pg_replicated, daemon_process):
    pair = pg_replicated
    pair.create_database("wingman")
    servers = [definition() for _ in range(10)]
    ids = [s["settings"]["uuid"] for s in servers]
    daemon = await asyncio.to_thread(
        daemon_process, servers=servers, database={"url": pair.url("wingman") + "&timeout=5&command_timeout=30"}
    )

    promotion: list[float] = []

    def failover() -> None:
        pair.kill_primary()
        started = time.monotonic()
        pair.promote()  # pg_ctl promote -w: until the standby takes writes
        promotion.append(time.monotonic() - started)

    log: list[Sent] = []
    killed_at, stopped_at = await drive(daemon.url, ids, failover, log)

    statuses: dict[int, int] = {}
    for s in log:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    accepted = {s.operation for s in log if s.status == 202 and s.operation}
    seconds = gap(log, killed_at)
    print(
        f"\nfailover under load: {len(log)} requests in {stopped_at - log[0].at:.1f} s "
        f"({len(log) / (stopped_at - log[0].at):.0f}/s), answers {statuses}; "
        f"{len(accepted)} acknowledged; {seconds:.2f} s without service, of which pg_ctl promote "
        f"{promotion[0]:.2f} s; slowest answer "
        f"{max(s.seconds for s in log):.2f} s, median {sorted(s.seconds for s in log)[len(log) // 2] * 1000:.0f} ms"
    )
    assert not {code for code in statuses if code >= 500 and code != 503}, statuses
    assert statuses.get(0, 0) == 0, f"requests the daemon never answered: {statuses}"
    assert [s for s in log if s.at > killed_at and s.status == 202], "no request acknowledged after the kill"

    promoted = pair.url_of("standby", "wingman")
    found = await outcomes(promoted, accepted)
    missing = accepted - found.keys()
    assert not missing, f"{len(missing)} acknowledged operations without an outcome in the promoted database"
    twice = {op: kinds for op, kinds in found.items() if op in accepted and len(kinds) != 1}
    assert not twice, f"operations with more than one outcome: {list(twice.items())[:5]}"

    # The checkpointer (a checkpoint a second by default) signs on the new primary, over the
    # events written there, and the checkpoint chain verifies with the daemon's key: no fork.
    after = next(
        s.operation for s in sorted(log, key=lambda s: s.at) if s.at > killed_at + promotion[0] and s.operation
    )
    written_after = await scalar(promoted, "SELECT position FROM events WHERE metadata->>'operation_id' = $1", after)
    await eventually_async(
        lambda: scalar(promoted, "SELECT coalesce(max(size), 0) FROM checkpoints"),
        30,
        f"a checkpoint covering position {written_after}, written after the promotion",
        until=lambda size: size >= written_after,
    )
    key = re.search(r"public key (\S+) ", daemon.read_log())
    assert key, daemon.read_log()[-2000:]
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "wingman.api.cli", "audit", "verify", "--database", promoted, "--key", key[1]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK: the log checks out" in verify.stdout

    # The same daemon, never restarted, still takes requests on the new primary.
    assert daemon.proc.poll() is None
    async with httpx.AsyncClient(base_url=daemon.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        resp = await client.post(f"/api/servers/{ids[0]}/power", json={"action": "kill"})
    assert resp.status_code == 202, resp.text


async def test_a_connection_cut_under_a_commit_is_a_503_and_the_store_carries_on(pg_url):
    """The writer's server process dies in the middle of a group (as a dying primary's do): the
    callers hear StoreUnavailable (a 503, and retried for what follows an accepted request), not a
    refusal of their rows (a 500, never retried), and the store commits again once the server is
    back (PostgreSQL restarts every backend after one is killed)."""
    u = make_url(pg_url)
    other = await asyncpg.connect(host=u.query["host"], port=int(u.query["port"]), user="postgres", database=u.database)
    event = NewEvent(type="server.deleted", data={}, metadata={"actor": "test"})
    async with opened_store(pg_url) as store:
        stream = str(uuidlib.uuid4())
        await store.append(stream, [event])
        await other.execute("BEGIN")
        await other.execute("SELECT pg_advisory_xact_lock($1)", LOG_LOCK_KEY)  # the writer's next group waits
        cut = asyncio.create_task(store.append(stream, [event]))
        waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'advisory' AND datname = $1"
        writer = await eventually_async(lambda: other.fetchval(waiting, u.database), 30, "the writer to wait")
        os.kill(writer, signal.SIGKILL)
        with pytest.raises(StoreUnavailable):
            await cut
        again = await eventually_async(
            lambda: store.append(stream, [event]), 30, "a commit", ignoring=(StoreUnavailable,)
        )
        assert again[0].version == 2
    other.terminate()  # the server ended it with the others


async def test_a_commit_whose_answer_was_lost_is_found_and_acknowledged(pg_replicated):
    """The primary writes a group's commit, waits for the synchronous standby, and its process is
    killed before it answers; the server replays the commit as it restarts. The store finds the
    group in the log and acknowledges it, as the database holds it: no 503 for what is stored,
    and the stream's next event follows it (not refused by the version key)."""
    pair = pg_replicated
    pair.create_database("doubt")
    url = pair.url_of("primary", "doubt")
    event = NewEvent(type="server.deleted", data={}, metadata={"actor": "test"})
    async with opened_store(url) as store:
        stream = str(uuidlib.uuid4())
        await store.append(stream, [event])
        await asyncio.to_thread(pair.stop_standby)
        in_doubt = asyncio.create_task(store.append(stream, [event]))
        waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
        backend = await eventually_async(
            lambda: asyncio.to_thread(pair.psql, "primary", waiting), 30, "a commit waiting"
        )
        os.kill(int(backend), signal.SIGKILL)
        recorded = await in_doubt
        assert [e.version for e in recorded] == [2]
        await asyncio.to_thread(pair.start_standby)  # the primary's commits are answered again
        after = await store.append(stream, [event])
        assert [e.version for e in after] == [3]
    rows = await asyncio.to_thread(pair.psql, "primary", "SELECT string_agg(version::text, ',') FROM events", "doubt")
    assert rows == "1,2,3"


async def test_a_first_host_that_never_answers_costs_its_timeout_not_the_connection(pg_url):
    """A member of a multi-host URL that takes the TCP connection and never answers (a machine
    that hangs; one that is off and drops the packets is the same to the client): the store
    connects to the next host once the URL's `timeout` has run out on that one. asyncpg alone
    spends the timeout on all the hosts together and never tries the next."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # never accepted: the kernel completes the handshakes, nothing ever answers
    u = make_url(pg_url)
    hosts = f"host=127.0.0.1:{silent.getsockname()[1]}&host={u.query['host']}:{u.query['port']}"
    url = f"postgresql+asyncpg://postgres@/{u.database}?{hosts}&target_session_attrs=read-write&timeout=1"
    try:
        async with opened_store(url) as store:
            recorded = await store.append(
                str(uuidlib.uuid4()), [NewEvent(type="server.deleted", data={}, metadata={"actor": "test"})]
            )
        assert [e.version for e in recorded] == [1]
    finally:
        silent.close()


async def test_between_the_kill_and_the_promotion_appends_are_unavailable_then_commit(pg_replicated):
    """The primary dead, the standby not yet promoted (read-only): no host takes writes, and an
    append is unavailable (a 503), not refused; once the standby is promoted the same store
    commits there, the stream going on from where it was."""
    pair = pg_replicated
    pair.create_database("gap")
    event = NewEvent(type="server.deleted", data={}, metadata={"actor": "test"})
    async with opened_store(pair.url("gap") + "&timeout=5") as store:
        stream = str(uuidlib.uuid4())
        await store.append(stream, [event])
        pair.kill_primary()
        with pytest.raises(StoreUnavailable):
            await store.append(stream, [event])
        await asyncio.to_thread(pair.promote)
        again = await eventually_async(
            lambda: store.append(stream, [event]), 30, "a commit on the promoted standby", ignoring=(StoreUnavailable,)
        )
        assert [e.version for e in again] == [2]
