"""Wings' create and sync against a small real Panel (tests/support/panel.py): the daemon fetches
the definition, registers the server, reports its installation, and starts it when asked."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from tests.support.daemon import TOKEN, definition
from tests.support.panel import PanelStandIn, panel_events, wait_events, with_panel

PANEL_AUTH = f"Bearer test.{TOKEN}"


@pytest.fixture
def node(daemon_process):
    panel = PanelStandIn().start()
    daemon = daemon_process(**with_panel(panel))
    wait_events(daemon, "panel.inventory_reconciled")
    yield panel, daemon
    panel.stop()


def install_reports(panel, uuid):
    return panel.wait_for(lambda r: r.path == f"/api/remote/servers/{uuid}/install" and r.method == "POST")


@pytest.mark.parametrize("start", [False, True])
def test_create_fetches_registers_reports_and_starts_when_asked(node, start):
    panel, daemon = node
    doc = definition()
    u = doc["settings"]["uuid"]
    panel.servers[u] = doc
    with daemon.client() as c:
        resp = c.post("/api/servers", json={"uuid": u, "start_on_completion": start})
        assert resp.status_code == 202, resp.text
        assert resp.headers["Location"] == f"/api/servers/{u}"
        [fetch] = panel.requests_to(f"/api/remote/servers/{u}", "GET")
        assert fetch.authorization == PANEL_AUTH
        [report] = install_reports(panel, u)
        assert report.body == {"successful": True, "reinstall": False} and report.authorization == PANEL_AUTH
        if start:
            daemon.wait_state(u, "running")
        else:
            events = wait_events(daemon, "panel.install_reported")
            assert events[-1]["data"]["successful"] and events[-1]["data"]["reported"]
            assert c.get(f"/api/servers/{u}").json()["state"] == "offline"
            assert not c.get(f"/api/servers/{u}/events", params={"type": "power.*"}).json()["events"]
        assert (daemon.folder / "var" / "volumes" / u).is_dir()


def test_create_refuses_bad_input_and_changes_nothing(node):
    panel, daemon = node
    with daemon.client() as c:
        resp = c.post("/api/servers", json={"uuid": "not-a-uuid"})
        assert resp.status_code == 400 and "uuid must be a UUID" in resp.json()["error"]
        resp = c.post("/api/servers", json={"uuid": str(uuidlib.uuid4()), "start_on_completion": 1})
        assert resp.status_code == 400
        assert panel.requests_to("/api/remote/servers/not-a-uuid") == []
        # A server the Panel does not know: 502 naming the Panel's words, nothing registered.
        unknown = str(uuidlib.uuid4())
        resp = c.post("/api/servers", json={"uuid": unknown})
        assert resp.status_code == 502 and "could not be found" in resp.json()["error"]
        # A definition without settings: refused, recorded, and the Panel told the install failed.
        bad = str(uuidlib.uuid4())
        panel.answers[("GET", f"/api/remote/servers/{bad}")] = (200, {"process_configuration": {}})
        resp = c.post("/api/servers", json={"uuid": bad})
        assert resp.status_code == 502 and "no `settings`" in resp.json()["error"]
        [report] = install_reports(panel, bad)
        assert report.body == {"successful": False, "reinstall": False}
        [refused] = panel_events(daemon, "panel.server_refused")
        assert refused["data"]["uuid"] == bad and refused["data"]["source"] == "create"
        assert c.get("/api/servers").json() == []
        assert c.get(f"/api/servers/{bad}").status_code == 404
    assert "no `settings`" in daemon.read_log()


def test_full_definition_still_creates_on_a_standalone_node(daemon_process):
    daemon = daemon_process()
    doc = definition()
    with daemon.client() as c:
        resp = c.post("/api/servers", json=doc)
        assert resp.status_code == 201
        resp = c.post("/api/servers", json={"uuid": str(uuidlib.uuid4())})
        assert resp.status_code == 409 and "no Panel" in resp.json()["error"]
        resp = c.post(f"/api/servers/{doc['settings']['uuid']}/sync")
        assert resp.status_code == 409 and "no Panel" in resp.json()["error"]


def test_sync_fetches_the_definition_now(node):
    panel, daemon = node
    doc = definition()
    u = doc["settings"]["uuid"]
    panel.servers[u] = doc
    with daemon.client() as c:
        assert c.post("/api/servers", json={"uuid": u}).status_code == 202
        panel.servers[u] = definition(u, env={"MOTD": "synced"})
        resp = c.post(f"/api/servers/{u}/sync")
        assert resp.status_code == 204, resp.text
        body = c.get(f"/api/servers/{u}").json()
        assert body["configuration"]["settings"]["environment"]["MOTD"] == "synced"
        changes = c.get(f"/api/servers/{u}/events", params={"type": "server.configuration_changed"}).json()["events"]
        assert [e["metadata"]["cause"] for e in changes] == ["panel_sync"]
        # The Panel down: a 502, and the definition stays.
        panel.answers[("GET", f"/api/remote/servers/{u}")] = (500, {"errors": [{"detail": "boom"}]})
        resp = c.post(f"/api/servers/{u}/sync")
        assert resp.status_code == 502 and "boom" in resp.json()["error"]
        assert c.get(f"/api/servers/{u}").json()["configuration"] == body["configuration"]
        assert c.post(f"/api/servers/{uuidlib.uuid4()}/sync").status_code == 404
