"""On SIGINT the daemon leaves its game servers running, on purpose; it says so as it goes, with how
many, and the next start adopts them, as it says."""

from __future__ import annotations

import signal

from tests.support.daemon import definition


def started(d, uuid: str) -> None:
    with d.client() as c:
        op = c.post(f"/api/servers/{uuid}/power", json={"action": "start"}).json()
    assert d.wait_operation(op["id"])["status"] == "succeeded"


def test_sigint_says_how_many_servers_it_leaves_running_and_the_next_start_adopts_them(daemon_process):
    servers = [definition(), definition(), definition()]
    d = daemon_process(servers=servers)
    for s in servers[:2]:  # the third stays offline: it is not counted
        started(d, s["settings"]["uuid"])
    d.stop(signal.SIGINT)
    assert d.proc.returncode == 0, d.read_log()[-3000:]
    log = d.read_log()
    assert "wingman stopped; 2 game servers left running: the next start adopts them" in log, log[-3000:]

    again = daemon_process(servers=servers, folder=d.folder)
    for s in servers[:2]:
        again.wait_state(s["settings"]["uuid"], "running", timeout=30)
    with again.client() as c:
        assert c.get(f"/api/servers/{servers[2]['settings']['uuid']}").json()["state"] == "offline"
    again.stop(signal.SIGINT)
    assert again.proc.returncode == 0
    # the same folder, so the same log file: the second daemon's words follow the first's
    assert again.read_log().count("wingman stopped; 2 game servers left running: the next start adopts them") == 2


def test_a_daemon_with_nothing_running_says_so(daemon_process):
    d = daemon_process(servers=[definition()])
    d.stop(signal.SIGINT)
    assert "wingman stopped; no game server was running" in d.read_log()
