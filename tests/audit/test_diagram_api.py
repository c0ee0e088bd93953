"""The diagram endpoints on a real daemon over a real socket: content types, bodies read back
with real parsers and compared with power.yaml and with the server's stored events, audit tokens
let in, and clear JSON 4xx errors that write nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.support.daemon import AUDIT_TOKEN, TOKEN, definition
from tests.support.diagrams import (
    ARROW_ID,
    counts_of,
    decoded_png,
    dot_edges,
    mermaid_counts,
    scxml_transitions,
    stored_events,
    svg_groups,
)
from tests.support.http import WINGS_NOT_FOUND, assert_json_error, database_path, total_events
from wingman.engine.diagrams.statechart import export
from wingman.engine.statechart import load_statechart
from wingman.engine.store.points import iso

SERVER, GONE = definition(), definition()
UUID = SERVER["settings"]["uuid"]
CHART = load_statechart()
ARROWS = {(s, t.trigger, t.dest) for t in CHART.transitions for s in t.sources}
MEDIA = {
    "mermaid": "text/vnd.mermaid; charset=utf-8",
    "dot": "text/vnd.graphviz; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "scxml": "application/scxml+xml",
    "markdown": "text/markdown; charset=utf-8",
}


@pytest.fixture(scope="module")
def daemon(module_daemon):
    d = module_daemon(servers=[SERVER])
    with d.client() as c:
        for action in ("start", "restart", "stop"):
            op = c.post(f"/api/servers/{UUID}/power", json={"action": action}).json()
            assert d.wait_operation(op["id"])["status"] == "succeeded", action
        assert c.post("/api/servers", json=GONE).status_code in (200, 201)  # a server that is later deleted
        gone = GONE["settings"]["uuid"]
        op = c.post(f"/api/servers/{gone}/power", json={"action": "start"}).json()
        assert d.wait_operation(op["id"])["status"] == "succeeded"
        op = c.post(f"/api/servers/{gone}/power", json={"action": "kill"}).json()
        assert d.wait_operation(op["id"])["status"] == "succeeded"
        d.wait_state(gone, "offline")
        assert c.delete(f"/api/servers/{gone}").status_code in (200, 202, 204)
    return d


@pytest.fixture(scope="module")
def events(daemon):
    return stored_events(database_path(daemon), UUID)


@pytest.fixture(scope="module", params=[TOKEN, AUDIT_TOKEN], ids=["node token", "audit token"])
def reader(daemon, request):
    with daemon.client(request.param) as c:
        yield c


@pytest.mark.parametrize("fmt", list(MEDIA))
def test_statechart_in_every_format(reader, fmt):
    r = reader.get("/api/statechart", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA[fmt]
    assert r.headers["content-disposition"].endswith(
        f'filename="power.{ {"mermaid": "mmd", "markdown": "md"}.get(fmt, fmt) }"'
    )
    if fmt == "png":
        decoded_png(r.content)
    elif fmt == "svg":
        assert {ARROW_ID.match(i).groups() for i in svg_groups(r.content) if ARROW_ID.match(i)} == ARROWS
    else:
        assert r.content == export(CHART, fmt)  # what the CLI and the committed files hold
    if fmt == "scxml":
        assert scxml_transitions(r.content)[2] == ARROWS


def test_statechart_defaults_to_mermaid(reader):
    r = reader.get("/api/statechart")
    assert r.headers["content-type"] == MEDIA["mermaid"] and r.text.startswith("stateDiagram-v2\n")


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "svg", "png"])
def test_history_diagram_counts_the_servers_transitions(reader, events, fmt):
    r = reader.get(f"/api/servers/{UUID}/diagram", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA[fmt]
    truth = counts_of(events)
    assert truth == {
        ("offline", "start", "starting"): 2,
        ("starting", "ready", "running"): 2,
        ("running", "stop", "stopping"): 2,
        ("stopping", "exited", "offline"): 2,
    }
    if fmt == "mermaid":
        assert mermaid_counts(r.text) == truth
    elif fmt == "dot":
        assert {
            (s, lbl.split(" ×")[0], d): int(lbl.split(" ×")[1]) for s, lbl, d in dot_edges(r.text) if "×" in lbl
        } == truth
    elif fmt == "svg":
        groups = svg_groups(r.content)
        assert {ARROW_ID.match(i).groups(): g["texts"][0] for i, g in groups.items() if ARROW_ID.match(i)} == {
            a: (f"{a[1]} ×{truth[a]}" if a in truth else a[1]) for a in ARROWS
        }
    else:
        decoded_png(r.content)


def test_history_in_a_window(reader, events):
    restart_start = [e for e in events if e["type"] == "state.changed"][4]  # the restart's start
    assert restart_start["data"]["trigger"] == "start"
    r = reader.get(f"/api/servers/{UUID}/diagram", params={"since": iso(restart_start["at"])})
    assert r.status_code == 200, r.text
    in_window = [e for e in events if e["type"] == "state.changed" and e["at"] >= restart_start["at"]]
    assert mermaid_counts(r.text) == counts_of(in_window) and len(in_window) == 4


@pytest.mark.parametrize("fmt", ["mermaid", "svg"])
def test_timeline(reader, events, fmt):
    r = reader.get(f"/api/servers/{UUID}/diagram/timeline", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA[fmt]
    changes = [e for e in events if e["type"] == "state.changed"]
    if fmt == "mermaid":
        arrows = [line.split(": ", 1)[0].strip() for line in r.text.splitlines() if "->>" in line]
        assert arrows == [f"{e['data']['from_state']}->>{e['data']['to_state']}" for e in changes]
        assert "(restart asked by node-token) via http" in r.text  # the actor and channel of the HTTP requests
    else:
        groups = svg_groups(r.content)
        assert len([g for g in groups if g.startswith("change_")]) == len(changes)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "path, params, status, words",
    [
        ("/api/statechart", {"format": "jpeg"}, 400, "'jpeg' is not one of mermaid, dot, svg, png, scxml, markdown"),
        (f"/api/servers/{UUID}/diagram", {"format": "scxml"}, 400, "is not one of mermaid, dot, svg, png"),
        (f"/api/servers/{UUID}/diagram/timeline", {"format": "dot"}, 400, "is not one of mermaid, svg, png"),
        (f"/api/servers/{UUID}/diagram", {"since": "yesterday"}, 400, "`since` 'yesterday' is not an RFC 3339 time"),
        (f"/api/servers/{UUID}/diagram/timeline", {"until": "2026-01-01T00:00:00"}, 400, "time zone"),
        (
            f"/api/servers/{UUID}/diagram",
            {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            400,
            "since (2026-02-01T00:00:00Z) is after until (2026-01-01T00:00:00Z)",
        ),
        ("/api/servers/00000000-0000-4000-8000-000000000000/diagram", {}, 404, WINGS_NOT_FOUND),
        ("/api/servers/not-a-uuid/diagram/timeline", {}, 404, WINGS_NOT_FOUND),
    ],
)
def test_bad_input_is_a_clear_4xx(reader, path, params, status, words):
    message = assert_json_error(reader.get(path, params=params), status)
    assert words in message


def test_a_deleted_server_keeps_its_diagrams(reader):
    gone = GONE["settings"]["uuid"]
    r = reader.get(f"/api/servers/{gone}/diagram", params={"format": "dot"})
    assert r.status_code == 200, r.text
    counts = {(s, lbl.split(" ×")[0], d): int(lbl.split(" ×")[1]) for s, lbl, d in dot_edges(r.text) if "×" in lbl}
    assert counts == {
        ("offline", "start", "starting"): 1,
        ("starting", "ready", "running"): 1,
        ("running", "exited", "offline"): 1,
    }
    assert "(deleted)" in r.text and "current state" not in r.text  # it has no state any more
    assert "(deleted)" in reader.get(f"/api/servers/{gone}/diagram").text.splitlines()[1]  # the Mermaid title
    timeline = reader.get(f"/api/servers/{gone}/diagram/timeline").text
    assert timeline.rstrip().endswith("the server was deleted (by node-token) via http")
    assert "running->>offline" in timeline and "it was killed (kill asked by node-token) via http" in timeline


def test_diagrams_need_a_token_and_are_in_the_openapi_document(daemon):
    assert_json_error(httpx.get(daemon.url + "/api/statechart"), 401)
    assert_json_error(
        httpx.get(daemon.url + f"/api/servers/{UUID}/diagram", headers={"Authorization": "Bearer wrong-token-123"}), 403
    )
    paths = httpx.get(daemon.url + "/api/openapi.json").json()["paths"]
    assert {"/api/statechart", "/api/servers/{uuid}/diagram", "/api/servers/{uuid}/diagram/timeline"} <= set(paths)


def test_a_diagram_request_writes_nothing(daemon, reader):
    before = total_events(daemon)
    for path in (
        "/api/statechart?format=svg",
        f"/api/servers/{UUID}/diagram?format=png",
        f"/api/servers/{UUID}/diagram/timeline",
    ):
        assert reader.get(path).status_code == 200
    assert total_events(daemon) == before
