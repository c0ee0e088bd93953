"""A node with a Panel takes its servers from it: the boot inventory, page by page, against a small
real Panel (tests/support/panel.py) and a real daemon over a real socket."""

from __future__ import annotations

import pytest

from tests.support.daemon import TOKEN, definition
from tests.support.panel import RESET_PATH, SERVERS_PATH, PanelStandIn, panel_events, wait_events, with_panel
from tests.support.waiting import eventually

PANEL_AUTH = f"Bearer test.{TOKEN}"  # token_id "test" (tests/support/daemon.py), as Wings sends it


def server_ids(daemon) -> set[str]:
    with daemon.client() as c:
        return {s["uuid"] for s in c.get("/api/servers").json()}


def test_boot_pages_through_the_panel_as_wings_does_then_resets(daemon_process):
    docs = [definition() for _ in range(8)]
    with PanelStandIn(docs) as panel:
        daemon = daemon_process(**with_panel(panel, per_page=3))
        wait_events(daemon, "panel.inventory_reconciled")
        pages = panel.requests_to(SERVERS_PATH, "GET")
        # Page 0 first (Laravel reads it as page 1), then up to meta.last_page (3 pages of 3).
        assert [(r.query["page"], r.query["per_page"]) for r in pages] == [("0", "3"), ("2", "3"), ("3", "3")]
        resets = panel.requests_to(RESET_PATH, "POST")
        assert len(resets) == 1 and resets[0].at >= max(r.at for r in pages)
        assert {r.authorization for r in panel.requests} == {PANEL_AUTH}
        assert server_ids(daemon) == {d["settings"]["uuid"] for d in docs}
        [done] = panel_events(daemon, "panel.inventory_reconciled")
        assert done["data"] | {} == {**done["data"], "pages": 3, "listed": 8, "registered": 8, "removed": 0}
        # A server's definition is the Panel's.
        some = docs[4]["settings"]["uuid"]
        with daemon.client() as c:
            assert c.get(f"/api/servers/{some}").json()["configuration"]["settings"]["uuid"] == some


def test_panel_down_at_boot_then_back(daemon_process, tmp_path):
    kept, dropped, running = definition(), definition(), definition()
    added = definition()
    panel = PanelStandIn([kept, dropped, running]).start()
    daemon = daemon_process(**with_panel(panel))
    wait_events(daemon, "panel.inventory_reconciled")
    daemon.stop()

    # The Panel goes down; meanwhile it drops two servers, changes one and adds one.
    panel.stop()
    panel.servers = {}
    changed = definition(kept["settings"]["uuid"], env={"MOTD": "changed on the Panel"})
    panel.servers = {d["settings"]["uuid"]: d for d in (changed, added)}
    daemon.start()
    # The node boots from what it last recorded, and serves.
    assert server_ids(daemon) == {d["settings"]["uuid"] for d in (kept, dropped, running)}
    [failed] = wait_events(daemon, "panel.inventory_failed")
    assert "could not reach the Panel" in failed["data"]["reason"] and failed["data"]["servers_recorded"] == 3

    # The Panel answers, its list wrongly at first: each failure is logged and recorded once, not at
    # every retry. Meanwhile one server is started (its start syncs it from the Panel, which still
    # serves that one), so it is running when the Panel's list no longer holds it.
    r = running["settings"]["uuid"]
    panel.answers[("GET", SERVERS_PATH)] = (503, {"errors": [{"detail": "maintenance"}]})
    panel.answers[("GET", f"{SERVERS_PATH}/{r}")] = (200, running)
    panel.start()
    with daemon.client() as c:
        op = c.post(f"/api/servers/{r}/power", json={"action": "start"}).json()
    assert daemon.wait_operation(op["id"])["status"] == "succeeded"
    panel.wait_for(lambda q: q.path == SERVERS_PATH, count=3)
    failures = panel_events(daemon, "panel.inventory_failed")
    assert len(failures) == 2 and "maintenance" in failures[1]["data"]["reason"]
    assert daemon.read_log().count("maintenance") == 1
    assert server_ids(daemon) == {d["settings"]["uuid"] for d in (kept, dropped, running)}

    del panel.answers[("GET", SERVERS_PATH)]
    [done] = wait_events(daemon, "panel.inventory_reconciled", count=2)[1:]
    assert {k: done["data"][k] for k in ("registered", "updated", "removed", "removal_pending")} == {
        "registered": 1,
        "updated": 1,
        "removed": 1,
        "removal_pending": 1,
    }
    ids = server_ids(daemon)
    assert ids == {kept["settings"]["uuid"], added["settings"]["uuid"], running["settings"]["uuid"]}
    with daemon.client() as c:
        assert (
            c.get(f"/api/servers/{kept['settings']['uuid']}").json()["configuration"]["settings"]["environment"]["MOTD"]
            == "changed on the Panel"
        )
        # The dropped server's history is kept.
        history = c.get(f"/api/servers/{dropped['settings']['uuid']}/events").json()["events"]
        assert history[-1]["type"] == "server.deleted" and history[-1]["metadata"]["cause"] == "panel_unlisted"
        # The running one is not stopped behind anyone's back: it runs until someone stops it...
        assert c.get(f"/api/servers/{r}").json()["state"] == "running"
        assert c.get(f"/api/servers/{r}/events", params={"type": "panel.server_unlisted"}).json()["events"]
        op = c.post(f"/api/servers/{r}/power", json={"action": "stop"}).json()
        assert daemon.wait_operation(op["id"])["status"] == "succeeded"
        # ...and is removed once it is offline.
        eventually(
            lambda: c.get(f"/api/servers/{r}").status_code,
            30,
            "the unlisted server removed once stopped",
            until=lambda status: status == 404,
        )
    assert len(panel.requests_to(RESET_PATH, "POST")) == 2
    panel.stop()


def test_bad_entries_are_refused_one_by_one_and_change_nothing_else(daemon_process):
    good, recorded = definition(), definition()
    panel = PanelStandIn([good, recorded]).start()
    daemon = daemon_process(**with_panel(panel))
    wait_events(daemon, "panel.inventory_reconciled")
    r = recorded["settings"]["uuid"]
    with daemon.client() as c:
        before = c.get(f"/api/servers/{r}").json()["configuration"]
    daemon.stop()
    # The Panel now lists the recorded server without its settings, and an entry whose uuid is not one.
    panel.answers[("GET", SERVERS_PATH)] = (
        200,
        {
            "data": [
                {"uuid": good["settings"]["uuid"], **good},
                {"uuid": r, "process_configuration": {}},
                {"uuid": "not-a-uuid", **definition()},
            ],
            "meta": {"current_page": 1, "last_page": 1, "per_page": 50, "total": 3},
        },
    )
    daemon.start()
    done = wait_events(daemon, "panel.inventory_reconciled", count=2)[1]["data"]
    assert (done["listed"], done["refused"], done["removed"], done["unchanged"]) == (2, 2, 0, 1)
    reasons = sorted(e["data"]["reason"] for e in panel_events(daemon, "panel.server_refused"))
    assert "has no `settings`" in reasons[0] and "'not-a-uuid' is not a UUID" in reasons[1]
    log = daemon.read_log()
    assert "no `settings`" in log and "not-a-uuid" in log
    # The server listed without settings keeps its recorded definition; nothing else was added or removed.
    assert server_ids(daemon) == {good["settings"]["uuid"], r}
    with daemon.client() as c:
        assert c.get(f"/api/servers/{r}").json()["configuration"] == before
    panel.stop()


@pytest.mark.parametrize(
    "bad, says",
    [
        ("page_not_json", "not JSON"),
        ("last_page_huge", "meta.last_page is 1000000000"),
    ],
)
def test_a_bad_page_fails_the_whole_inventory_and_changes_nothing(daemon_process, bad, says):
    docs = [definition() for _ in range(5)]
    panel = PanelStandIn(docs[:4]).start()
    daemon = daemon_process(**with_panel(panel, per_page=2))
    wait_events(daemon, "panel.inventory_reconciled")
    daemon.stop()
    # Page 1 drops a server and page 3 adds one; then one page is bad.
    panel.servers = {d["settings"]["uuid"]: d for d in docs[1:]}
    if bad == "page_not_json":
        panel.page_bodies[2] = b"<html>502 Bad Gateway</html>"
    else:
        panel.meta_override["last_page"] = 10**9
    daemon.start()
    panel.wait_for(lambda q: q.path == SERVERS_PATH, count=3 + 2)  # retried, never halfway
    failures = panel_events(daemon, "panel.inventory_failed")
    assert len(failures) == 1 and says in failures[0]["data"]["reason"], failures
    assert daemon.read_log().count(says) == 1
    assert panel_events(daemon, "panel.inventory_reconciled")[1:] == []
    assert server_ids(daemon) == {d["settings"]["uuid"] for d in docs[:4]}
    assert len(panel.requests_to(RESET_PATH)) == 1  # the first boot's only
    panel.stop()
