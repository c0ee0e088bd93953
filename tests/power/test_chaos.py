"""Chaos: a real daemon under a stream of random power actions, SIGKILLed at random moments and
started again, round after round. After every round, nothing is lost:
- every operation that got a 202 has exactly one outcome;
- `wingman audit verify` finds the log clean;
- every server's recorded state matches its real process: running means exactly one live
  server (one process group, the recorded one), offline means none.

Bounded for CI (ROUNDS rounds of a second or so of load each). CHAOS_SEED replays a run's
choices (the interleavings themselves depend on timing, so a failure names the round and seed)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.daemon import REPO, DaemonProcess, definition, free_port, kill_leftovers
from tests.support.http import processes_under, stored_events
from tests.support.waiting import eventually

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "20"))
SERVERS = 4
ACTIONS = ("start", "start", "stop", "restart", "kill")  # starts weighted: servers spend time up
OUTCOMES = {"power.succeeded", "power.failed", "power.rejected", "power.cancelled", "power.interrupted"}


def process_groups(folder: Path) -> set[int]:
    groups = set()
    for pid in processes_under(folder):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    return groups


async def storm(d: DaemonProcess, ids: list[str], rng: random.Random, seconds: float, accepted: list[str]) -> None:
    """A few clients sending random actions until `seconds` pass (or the daemon dies)."""
    deadline = time.monotonic() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(base_url=d.url, headers=d.headers, timeout=10) as c:
            while time.monotonic() < deadline:
                body = {"action": rng.choice(ACTIONS), "wait_seconds": rng.choice((0, 1, 2))}
                try:
                    resp = await c.post(f"/api/servers/{rng.choice(ids)}/power", json=body)
                except httpx.HTTPError:
                    return  # the daemon was killed under us
                if resp.status_code == 202:
                    accepted.append(resp.json()["id"])
                await asyncio.sleep(rng.uniform(0, 0.05))  # deliberate: the load generator's pacing

    await asyncio.gather(*(client() for _ in range(3)))


def settle(d: DaemonProcess, ids: list[str]) -> dict[str, dict]:
    """Wait until the restarted daemon has no operation in flight and every server is at rest."""
    with d.client() as c:

        def at_rest():
            if c.get("/api/audit/verify").json()["open_operations"]:
                return None
            views = {u: c.get(f"/api/servers/{u}").json() for u in ids}
            return views if all(v["state"] in ("offline", "running") for v in views.values()) else None

        return eventually(at_rest, timeout=120, what="the servers to come to rest")


def history(d: DaemonProcess, uuid: str, last: int = 25) -> str:
    """The end of a server's stream, for a failure message."""
    rows = []
    for e in stored_events(d, uuid)[-last:]:
        data = {k: v for k, v in e["data"].items() if k not in ("definition", "last_lines")}
        rows.append(f"  v{e['version']} {e['type']} {data} cause={e['metadata'].get('cause')}")
    return "\n".join(rows)


def check_round(d: DaemonProcess, ids: list[str], accepted: list[str], label: str) -> None:
    views = settle(d, ids)
    with d.client() as c:
        for op_id in accepted:
            events = c.get(f"/api/operations/{op_id}").json()["events"]
            outcomes = [e["type"] for e in events if e["type"] in OUTCOMES]
            assert len(outcomes) == 1, f"{label}: operation {op_id} has outcomes {outcomes}"
    verify = subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", "audit", "verify", "--config", str(d.config_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, f"{label}: audit verify: {verify.stdout}{verify.stderr}"
    volumes = d.folder / "var" / "volumes"
    for uuid in ids:
        groups = process_groups(volumes / uuid)
        if views[uuid]["state"] == "running":
            started = [e for e in stored_events(d, uuid) if e["type"] == "process.started"][-1]
            assert groups == {started["data"]["pid"]}, (
                f"{label}: {uuid} is running as {groups}, recorded {started['data']}"
            )
        else:
            assert groups == set(), f"{label}: {uuid} is offline, but processes run: {groups}\n" + history(d, uuid)


def test_sigkill_the_daemon_at_random_moments_and_nothing_is_lost(tmp_path):
    seed = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(2**32)))
    rng = random.Random(seed)
    print(f"chaos: CHAOS_SEED={seed}")
    servers = [definition(env={"BOOT_SECONDS": "0.2"}, stop_timeout=5) for _ in range(SERVERS)]
    ids = [s["settings"]["uuid"] for s in servers]
    port, folder = free_port(), tmp_path / "node"
    accepted: list[str] = []
    d = DaemonProcess(folder, servers=servers, port=port)
    try:
        d.start()
        for n in range(1, ROUNDS + 1):
            asyncio.run(storm(d, ids, rng, rng.uniform(0.3, 1.5), accepted))
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(30)
            d.stop()
            d = DaemonProcess(folder, servers=servers, port=port).start()
            check_round(d, ids, accepted, f"round {n} of {ROUNDS} (CHAOS_SEED={seed})")
        print(f"chaos: {ROUNDS} rounds, {len(accepted)} operations accepted, 0 lost (seed {seed})")
    finally:
        d.stop()
        kill_leftovers(tmp_path)
