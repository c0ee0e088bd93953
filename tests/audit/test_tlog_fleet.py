"""Two nodes of a fleet on one PostgreSQL database, each serving its own log in the C2SP formats
(docs/fleet.md, docs/checkpoints.md): each note has its node's origin and verifies with its node's
key only; the tree rebuilt from a node's tiles is its signed root, and its entry bundles hold that
node's events and none of the other's; an event of node A is included in A's tree; and a later
checkpoint of each node is consistent with its earlier one while the other node keeps writing.
The client is the one written from the specs in tests/audit/test_tlog_verifier.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import AUDIT_TOKEN, DaemonProcess, definition
from tests.support.fleet import fleet_node
from tests.support.tlog_client import (
    NoteRefused,
    TileClient,
    VKey,
    consistent,
    event_hash,
    leaf,
    log_vkey,
    open_checkpoint,
    parse_verifier_key,
    root_from_inclusion,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.postgres

PREFIX = "/api/audit"
CHECKPOINT_OFTEN = {"checkpoint_every_events": 1, "checkpoint_every_seconds": 0.2}


def _vkey(node: str, public_key_b64: str) -> VKey:
    """The node's signed-note verifier key, built here from the spec (not from the served header)."""
    return parse_verifier_key(log_vkey(node, public_key_b64))


def _drive(d: DaemonProcess, uuid: str, actions: tuple[str, ...]) -> None:
    with d.client() as c:
        for action in actions:
            resp = c.post(f"/api/servers/{uuid}/power", json={"action": action})
            assert resp.status_code == 202, resp.text
            assert d.wait_operation(resp.json()["id"])["status"] == "succeeded"


def _signed(c: httpx.Client, node: str, key: VKey, at_least: int = 1) -> tuple[int, bytes]:
    """The node's latest note, opened with its key, once it covers at least `at_least` leaves."""

    def latest() -> tuple[int, bytes] | None:
        origin, size, root = open_checkpoint(c.get(f"{PREFIX}/checkpoint").text, [key])
        assert origin == f"wingman/{node}"
        return (size, root) if size >= at_least else None

    return eventually(latest, 30, f"a checkpoint of {node} covering {at_least} events")


def _tiles(c: httpx.Client, size: int) -> TileClient:
    def fetch(path: str) -> bytes:
        r = c.get(f"{PREFIX}/tile/{path}")
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.content

    return TileClient(fetch, size)


def _own_events(c: httpx.Client) -> list[dict]:
    """The node's own events in position order (the audit API's default scope)."""
    events: list[dict] = []
    after = 0
    while True:
        page = c.get("/api/events", params={"after": after, "limit": 500}).json()["events"]
        if not page:
            return events
        events += page
        after = page[-1]["position"]


async def test_each_node_serves_its_own_tree_as_tiles(tmp_path: Path, pg_url: str) -> None:
    a_server, b_server = definition(), definition()
    a = fleet_node(tmp_path / "a", pg_url, "node-a", [a_server], audit=CHECKPOINT_OFTEN)
    b = fleet_node(tmp_path / "b", pg_url, "node-b", [b_server], audit=CHECKPOINT_OFTEN)
    a_uuid, b_uuid = a_server["settings"]["uuid"], b_server["settings"]["uuid"]
    try:
        await asyncio.gather(asyncio.to_thread(a.start, 60), asyncio.to_thread(b.start, 60))
        await asyncio.gather(
            asyncio.to_thread(_drive, a, a_uuid, ("start", "stop")),
            asyncio.to_thread(_drive, b, b_uuid, ("start", "stop", "start", "stop")),
        )
        with a.client(AUDIT_TOKEN) as ca, b.client(AUDIT_TOKEN) as cb:
            key_a = _vkey("node-a", ca.get(f"{PREFIX}/key").json()["public_key"])
            key_b = _vkey("node-b", cb.get(f"{PREFIX}/key").json()["public_key"])
            a_events, b_events = _own_events(ca), _own_events(cb)
            assert a_events and b_events
            size_a, root_a = _signed(ca, "node-a", key_a, len(a_events))
            size_b, root_b = _signed(cb, "node-b", key_b, len(b_events))

            # one node's note never opens with the other's key: two logs, not one
            with pytest.raises(NoteRefused):
                open_checkpoint(ca.get(f"{PREFIX}/checkpoint").text, [key_b])

            # each node's tiles rebuild its signed root, from its own events only
            tiles_a, tiles_b = _tiles(ca, size_a), _tiles(cb, size_b)
            assert tiles_a.mth(0, size_a) == root_a and tiles_b.mth(0, size_b) == root_b
            bundle_a = ca.get(f"{PREFIX}/tile/entries/000.p/{min(size_a, 256)}").content
            served = [bundle_a[i + 2 : i + 34] for i in range(0, len(bundle_a), 34)]
            assert served == [event_hash(e) for e in a_events[: len(served)]]
            assert not {event_hash(e) for e in b_events} & set(served)

            # an event of node A is in A's tree at its index among A's events, not at its position
            ev = a_events[-1]
            index = len(a_events) - 1
            assert ev["position"] > index + 1  # node B's events sit between A's in the shared log
            proof = tiles_a.inclusion(index, size_a)
            assert root_from_inclusion(index, size_a, leaf(event_hash(ev)), proof) == root_a

        # A grows while B keeps writing: A's next checkpoint is consistent with the one above
        await asyncio.gather(
            asyncio.to_thread(_drive, a, a_uuid, ("start", "stop")),
            asyncio.to_thread(_drive, b, b_uuid, ("start", "stop")),
        )
        with a.client(AUDIT_TOKEN) as ca:
            new_size, new_root = _signed(ca, "node-a", key_a, len(_own_events(ca)))
            assert new_size > size_a
            proof = _tiles(ca, new_size).consistency(size_a, new_size)
            assert consistent(size_a, new_size, root_a, new_root, proof)
    finally:
        a.stop()
        b.stop()
