"""Everything a running daemon says about states follows the chart it enforces (`system.statechart`),
not the packaged one: the statechart diagram, the states the OpenAPI document lists (a server's, a
schedule's conditions), the `status` frames of the websocket (a state's `panel_status`), and the
diagrams drawn over a server's history. A real daemon with a chart of its own, read over HTTP and
the websocket."""

from __future__ import annotations

import asyncio

from tests.power.test_chart_change import add_maintenance, chart_file
from tests.support.daemon import DaemonProcess, definition
from tests.support.websocket import authed


def stopping_is_running_to_a_panel(doc: dict) -> None:
    """A Panel is told `running` until the process is gone (the packaged chart says `stopping`)."""
    for s in doc["states"]:
        if s["name"] == "stopping":
            s["panel_status"] = "running"


def own_chart(doc: dict) -> None:
    add_maintenance(doc)
    stopping_is_running_to_a_panel(doc)


def test_the_diagrams_the_document_and_the_websocket_follow_the_chart_in_force(tmp_path):
    server = definition()
    uuid = server["settings"]["uuid"]
    chart = chart_file(tmp_path, "own.yaml", own_chart)
    d = DaemonProcess(tmp_path / "node", servers=[server])
    d.extra_config = {"system": {"root_directory": str(d.folder / "var"), "statechart": str(chart)}}
    d.start()
    try:
        with d.client() as c:
            drawn = c.get("/api/statechart", params={"format": "mermaid"})
            assert drawn.status_code == 200 and "maintenance" in drawn.text, drawn.text

            schemas = c.get("/api/openapi.json").json()["components"]["schemas"]
            assert "maintenance" in schemas["ServerBody"]["properties"]["state"]["enum"]
            # a schedule's only_in_states takes this chart's states (the route checks them against it)
            assert "maintenance" in schemas["Conditions"]["properties"]["only_in_states"]["items"]["enum"]

        async def statuses_of_a_start_and_a_stop() -> list[str]:
            async with authed(d, uuid) as ws:
                with d.client() as c:
                    op = c.post(f"/api/servers/{uuid}/power", json={"action": "start"}).json()
                    assert d.wait_operation(op["id"])["status"] == "succeeded"
                    op = c.post(f"/api/servers/{uuid}/power", json={"action": "stop"}).json()
                    assert d.wait_operation(op["id"])["status"] == "succeeded"
                return await ws.statuses(3)

        # `stopping` is said as this chart's panel_status for it, `running`: no new status until offline
        # (the packaged chart's frames are starting, running, stopping, offline)
        assert asyncio.run(statuses_of_a_start_and_a_stop()) == ["starting", "running", "offline"]

        with d.client() as c:
            history = c.get(f"/api/servers/{uuid}/diagram", params={"format": "mermaid"})
            assert history.status_code == 200 and "maintenance" in history.text, history.text
    finally:
        d.stop()
