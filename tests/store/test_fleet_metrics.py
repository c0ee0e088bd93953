"""Each node of a fleet counts its own: two daemons on one PostgreSQL database, each with a server
it starts a different number of times, and each node's /metrics shows its own operations only
(read with PostgreSQL's JSON operators, the same families as on SQLite)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import AUDIT_TOKEN, DaemonProcess, definition

pytestmark = pytest.mark.postgres


def _starts(d: DaemonProcess) -> float:
    text = d.client(AUDIT_TOKEN).get("/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "wingman_power_operations_total" and s.labels == {"action": "start", "outcome": "succeeded"}:
                return s.value
    return 0.0


def _cycle(d: DaemonProcess, uuid: str, times: int) -> None:
    with d.client() as c:
        for _ in range(times):
            for action in ("start", "stop"):
                r = c.post(f"/api/servers/{uuid}/power", json={"action": action})
                assert r.status_code == 202, r.text
                assert d.wait_operation(r.json()["id"])["status"] == "succeeded"


def test_each_node_counts_its_own_operations(tmp_path, pg_url):
    a_server, b_server = definition(), definition()
    a = DaemonProcess(
        tmp_path / "a", servers=[a_server], extra_config={"node_id": "node-a", "database": {"url": pg_url}}
    )
    b = DaemonProcess(
        tmp_path / "b", servers=[b_server], extra_config={"node_id": "node-b", "database": {"url": pg_url}}
    )
    try:
        a.start(60)
        b.start(60)
        _cycle(a, a_server["settings"]["uuid"], 1)
        _cycle(b, b_server["settings"]["uuid"], 2)
        assert (_starts(a), _starts(b)) == (1, 2)
        b.stop()
        b.start(60)  # counted from the shared log again, this node's part of it
        assert _starts(b) == 2
    finally:
        a.stop()
        b.stop()
