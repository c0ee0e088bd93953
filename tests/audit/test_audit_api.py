"""The audit API on a real daemon over a real socket: paging and filters, point-in-time state,
verification (including tampering done with raw SQL while the daemon runs, found by the API and by
the CLI at the same event), and audit tokens that may read but not act."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.daemon import AUDIT_TOKEN, REPO, TOKEN, definition
from tests.support.http import WINGS_NOT_FOUND, assert_json_error, database_path
from wingman.engine.store.hashing import event_hash

SERVERS = [definition() for _ in range(5)]
UUIDS = [s["settings"]["uuid"] for s in SERVERS]
CLEAN, BYTE, DELETED, SWAPPED, FORGED = UUIDS


@pytest.fixture(scope="module")
def daemon(module_daemon):
    d = module_daemon(servers=SERVERS)
    with d.client() as c:
        for uuid in UUIDS:  # each server: start, stop (a dozen events a stream)
            for action in ("start", "stop"):
                op = c.post(f"/api/servers/{uuid}/power", json={"action": action}).json()
                assert d.wait_operation(op["id"])["status"] == "succeeded"
    return d


@pytest.fixture(scope="module")
def node(daemon):
    with daemon.client(TOKEN) as c:
        yield c


@pytest.fixture(scope="module")
def auditor(daemon):
    with daemon.client(AUDIT_TOKEN) as c:
        yield c


def all_pages(client, path, **params) -> list[dict]:
    out, after = [], 0
    while True:
        body = client.get(path, params={**params, "after": after, "limit": 4}).json()
        out.extend(body["events"])
        if body["next_after"] is None:
            return out
        after = body["next_after"]


def test_events_paged_and_filtered(node, auditor):
    mine = all_pages(auditor, f"/api/servers/{CLEAN}/events")
    assert [e["version"] for e in mine] == list(range(1, len(mine) + 1)) and len(mine) > 8
    assert mine[0]["type"] == "server.registered" and mine[0]["what"].startswith("server registered")
    assert {"position", "event_id", "data", "metadata", "recorded_at", "prev_hash", "hash", "why"} <= set(mine[0])
    everything = all_pages(node, "/api/events")
    assert [e["position"] for e in everything] == sorted(e["position"] for e in everything)
    # The servers' streams, and the node's own (the statechart in force, recorded at its first start).
    assert {e["stream_id"] for e in everything if not e["stream_id"].startswith("node:")} == set(UUIDS)
    assert all_pages(node, "/api/events", server=CLEAN) == mine

    power = all_pages(auditor, f"/api/servers/{CLEAN}/events", type="power.*")
    assert power and all(e["type"].startswith("power.") for e in power)
    both = all_pages(auditor, f"/api/servers/{CLEAN}/events", type="power.requested,power.succeeded")
    assert [e["type"] for e in both] == ["power.requested", "power.succeeded"] * 2
    by_node = all_pages(auditor, f"/api/servers/{CLEAN}/events", actor="node-token")
    assert by_node and all(e["metadata"]["actor"] == "node-token" for e in by_node)
    op = both[0]["data"]["operation_id"]
    of_op = all_pages(auditor, "/api/events", operation=op)
    assert of_op[0]["type"] == "power.requested" and of_op[-1]["type"] == "power.succeeded"
    assert all(e["stream_id"] == CLEAN for e in of_op)
    t = mine[3]["recorded_at"]
    window = all_pages(auditor, f"/api/servers/{CLEAN}/events", since=t, until=t)
    assert window and all(e["recorded_at"] == t for e in window)


def test_state_at_positions_and_times(auditor):
    events = all_pages(auditor, f"/api/servers/{CLEAN}/events")
    starting = next(e for e in events if e["type"] == "state.changed" and e["data"]["to_state"] == "starting")
    body = auditor.get(f"/api/servers/{CLEAN}/state", params={"at": starting["position"]}).json()
    assert body["state"] == "starting" and body["exists"]
    assert body["operation_in_flight"]["id"] == starting["data"]["operation_id"]
    assert body["last_transition"]["cause"] == "operator" and body["last_transition"]["actor"] == "node-token"
    assert body["configuration"]["settings"]["uuid"] == CLEAN and body["suspended"] is False
    body = auditor.get(f"/api/servers/{CLEAN}/state", params={"at": starting["recorded_at"]}).json()
    assert body["state"] == "starting"
    first = events[0]["recorded_at"]
    before = auditor.get(f"/api/servers/{CLEAN}/state", params={"at": "2000-01-01T00:00:00Z"}).json()
    assert before["exists"] is False and first > "2000"
    now = auditor.get(f"/api/servers/{CLEAN}/state").json()
    assert now["state"] == "offline" and now["version"] == events[-1]["version"]


@pytest.mark.parametrize(
    "path, params, words",
    [
        (f"/api/servers/{CLEAN}/state", {"at": "yesterday"}, "RFC 3339"),
        (f"/api/servers/{CLEAN}/state", {"at": "2026-01-01T00:00:00"}, "time zone"),
        (f"/api/servers/{CLEAN}/events", {"limit": "0"}, "`limit`"),
        (f"/api/servers/{CLEAN}/events", {"limit": "5000"}, "`limit`"),
        (f"/api/servers/{CLEAN}/events", {"after": "-1"}, "`after`"),
        ("/api/events", {"after": "x"}, "`after`"),
        ("/api/events", {"after": str(2**64)}, "`after`"),  # past any position a database can hold
        (f"/api/servers/{CLEAN}/events", {"after": str(2**63)}, "`after`"),
        (f"/api/servers/{CLEAN}/state", {"at": str(2**64)}, "at most"),
        ("/api/events", {"since": "soon"}, "`since`"),
        ("/api/events", {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "after"),
    ],
)
def test_bad_query_is_400(auditor, path, params, words):
    assert words in assert_json_error(auditor.get(path, params=params), 400)


@pytest.mark.parametrize(
    "path",
    ["/api/servers/{u}/events", "/api/servers/{u}/state", "/api/events?server={u}", "/api/audit/verify?server={u}"],
)
@pytest.mark.parametrize("u", ["00000000-0000-4000-8000-000000000000", "not-a-uuid"])
def test_unknown_server_is_404(auditor, path, u):
    assert_json_error(auditor.get(path.format(u=u)), 404, WINGS_NOT_FOUND)


def test_audit_token_reads_but_cannot_act(daemon, auditor, node):
    before = node.get("/api/system").json()["wingman"]["events"]
    for method, path, body in [
        ("POST", f"/api/servers/{CLEAN}/power", {"action": "start"}),
        ("POST", f"/api/servers/{CLEAN}/power", {"action": "kill"}),
        ("POST", "/api/servers", definition()),
        ("DELETE", f"/api/servers/{CLEAN}", None),
        ("POST", f"/api/servers/{CLEAN}/commands", {"commands": ["say hi"]}),
    ]:
        assert_json_error(auditor.request(method, path, json=body), 403)
    assert node.get("/api/system").json()["wingman"]["events"] == before  # nothing was written
    for path in (f"/api/servers/{CLEAN}/events", "/api/events", f"/api/servers/{CLEAN}/state", "/api/audit/verify"):
        assert auditor.get(path).status_code == 200, path
    assert_json_error(httpx.get(daemon.url + "/api/events", headers={"Authorization": "Bearer wrong-token-123"}), 403)
    assert_json_error(httpx.get(daemon.url + "/api/events"), 401)


def test_tokens_are_never_logged(daemon):
    log = daemon.read_log()
    assert log and TOKEN not in log and AUDIT_TOKEN not in log
    raw = database_path(daemon).read_bytes()
    assert TOKEN.encode() not in raw and AUDIT_TOKEN.encode() not in raw


# -- tampering while the daemon runs ---------------------------------------------------------------


def _rows(daemon, stream) -> list[dict]:
    con = sqlite3.connect(database_path(daemon))
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM events WHERE stream_id = ? ORDER BY version", (stream,))]
    con.close()
    return rows


def _sql(daemon, *statements) -> None:
    con = sqlite3.connect(database_path(daemon), timeout=30)
    with con:
        for stmt, args in statements:
            con.execute(stmt, args)
    con.close()


def _cli_first(daemon, *scope) -> dict:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wingman.api.cli",
            "audit",
            "verify",
            *scope,
            "--format",
            "json",
            "--config",
            str(daemon.config_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    return json.loads(r.stdout)["first_problem"]


def test_verify_clean_then_tampered(daemon, auditor):
    report = auditor.get("/api/audit/verify").json()
    assert report["ok"] and report["live_state_checked"] and report["first_problem"] is None

    expected = {}
    rows = _rows(daemon, BYTE)  # one byte of an event's data
    ev = rows[len(rows) // 2]
    i = ev["data"].index('"', ev["data"].index(":")) + 1
    _sql(
        daemon,
        (
            "UPDATE events SET data = substr(data, 1, ?) || 'Z' || substr(data, ?) WHERE position = ?",
            (i, i + 2, ev["position"]),
        ),
    )
    expected[BYTE] = (ev["version"], ev["position"], "hash")

    rows = _rows(daemon, DELETED)  # an event deleted in the middle
    gone, nxt = rows[len(rows) // 2], rows[len(rows) // 2 + 1]
    _sql(daemon, ("DELETE FROM events WHERE position = ?", (gone["position"],)))
    expected[DELETED] = (nxt["version"], nxt["position"], "sequence")

    rows = _rows(daemon, SWAPPED)  # two events swapped
    a, b = rows[4], rows[5]
    _sql(
        daemon,
        ("UPDATE events SET position = -1 WHERE position = ?", (a["position"],)),
        ("UPDATE events SET position = ? WHERE position = ?", (a["position"], b["position"])),
        ("UPDATE events SET position = ? WHERE position = -1", (b["position"],)),
    )
    expected[SWAPPED] = (b["version"], a["position"], "sequence")

    rows = _rows(daemon, FORGED)  # a forged event appended with a wrong hash
    head = rows[-1]
    _sql(
        daemon,
        (
            "INSERT INTO events (stream_id, version, event_id, type, data, metadata, recorded_at, prev_hash, hash) "
            "VALUES (?, ?, 'f0f0f0f0-0000-4000-8000-00000000000f', 'server.suspended', '{}', '{}', "
            "'2030-01-01 00:00:00.000000', ?, ?)",
            (FORGED, head["version"] + 1, head["hash"], "0" * 64),
        ),
    )
    forged = _rows(daemon, FORGED)[-1]
    expected[FORGED] = (forged["version"], forged["position"], "hash")

    for stream, (version, position, check) in expected.items():
        first = auditor.get("/api/audit/verify", params={"server": stream}).json()["first_problem"]
        assert (first["stream"], first["version"], first["position"], first["check"]) == (
            stream,
            version,
            position,
            check,
        )
        cli = _cli_first(daemon, stream)
        assert (cli["stream"], cli["version"], cli["position"], cli["check"]) == (stream, version, position, check)

    whole = auditor.get("/api/audit/verify").json()
    earliest = min(expected.items(), key=lambda kv: kv[1][1])
    assert not whole["ok"]
    assert (whole["first_problem"]["stream"], whole["first_problem"]["position"]) == (earliest[0], earliest[1][1])
    assert whole["problems_total"] >= len(expected)
    assert _cli_first(daemon)["position"] == earliest[1][1]
    # The clean server is still clean.
    assert auditor.get("/api/audit/verify", params={"server": CLEAN}).json()["ok"]


def test_live_state_that_differs_from_the_log_is_found(daemon, auditor):
    """A well-forged event (good hash, legal) written behind the daemon's back: the chain holds, but
    the daemon's live view no longer equals a replay of the log."""
    rows = _rows(daemon, CLEAN)
    head = rows[-1]
    at = datetime(2030, 1, 1, tzinfo=UTC)
    meta = {"actor": "node-token", "channel": "http"}
    event_id = "f0f0f0f0-0000-4000-8000-0000000000aa"
    h = event_hash(
        stream_id=CLEAN,
        version=head["version"] + 1,
        event_id=event_id,
        type="server.suspended",
        data={},
        metadata=meta,
        recorded_at=at,
        prev_hash=head["hash"],
    )
    _sql(
        daemon,
        (
            "INSERT INTO events (stream_id, version, event_id, type, data, metadata, recorded_at, prev_hash, hash) "
            "VALUES (?, ?, ?, 'server.suspended', '{}', ?, '2030-01-01 00:00:00.000000', ?, ?)",
            (CLEAN, head["version"] + 1, event_id, json.dumps(meta), head["hash"], h),
        ),
    )
    report = auditor.get("/api/audit/verify", params={"server": CLEAN}).json()
    assert not report["ok"]
    first = report["first_problem"]
    assert first["stream"] == CLEAN and first["check"] == "live"
    assert "never folded" in first["problem"]
