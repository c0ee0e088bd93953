"""GET /metrics (issue 30), read as an operator's tools read it: `promtool check metrics` passes on
it, its counters come from the log (a restart keeps them), per-server families can be turned off,
a separate listener serves them without a token, and the API's copy needs a token."""

from __future__ import annotations

import shutil
import subprocess
import sys

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import AUDIT_TOKEN, REPO, TOKEN, definition, free_port

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def scrape(d, token: str | None = None, accept: str | None = None, url: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    return httpx.get(url or d.url + "/metrics", headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def start_and_stop(d, uuid: str) -> None:
    with d.client() as c:
        for action, state in (("start", "running"), ("stop", "offline")):
            r = c.post(f"/api/servers/{uuid}/power", json={"action": action})
            assert r.status_code == 202, r.text
            assert d.wait_operation(r.json()["id"])["status"] == "succeeded"
            d.wait_state(uuid, state)


def test_a_power_operation_is_counted_and_promtool_accepts_the_output(daemon_process):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    start_and_stop(d, uuid)
    r = scrape(d, AUDIT_TOKEN)  # an audit token may read the metrics
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got["wingman_power_operations_total", (("action", "start"), ("outcome", "succeeded"))] == 1
    assert got["wingman_power_operations_total", (("action", "stop"), ("outcome", "succeeded"))] == 1
    assert got["wingman_servers", (("state", "offline"),)] == 1
    assert got["wingman_servers", (("state", "running"),)] == 0
    assert got["wingman_power_operation_duration_seconds_count", (("action", "start"),)] == 1
    assert got["wingman_store_events_total", ()] >= 8
    assert ("wingman_server_memory_bytes", (("server", uuid),)) in got
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=r.text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    openmetrics = scrape(d, AUDIT_TOKEN, accept="application/openmetrics-text; version=1.0.0")
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_counters_come_from_the_log_and_survive_a_restart(daemon_process):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    start_and_stop(d, uuid)
    before = samples(scrape(d, AUDIT_TOKEN).text)
    d.stop()
    d.start()
    after = samples(scrape(d, AUDIT_TOKEN).text)
    key = ("wingman_power_operations_total", (("action", "start"), ("outcome", "succeeded")))
    assert before[key] == after[key] == 1
    assert after["wingman_store_events_total", ()] >= before["wingman_store_events_total", ()]


def test_the_api_copy_needs_a_token(daemon_process):
    d = daemon_process(servers=[definition()])
    assert scrape(d).status_code == 401
    assert scrape(d, "not-a-token").status_code == 403


def test_per_server_families_can_be_turned_off_and_a_listener_serves_without_a_token(daemon_process):
    port = free_port()
    d = daemon_process(servers=[definition()], metrics={"per_server": False, "listen": f"127.0.0.1:{port}"})
    text = scrape(d, url=f"http://127.0.0.1:{port}/metrics").text  # no token on the metrics' own address
    got = samples(text)
    assert not any(name.startswith("wingman_server_memory") for name, _ in got)
    assert got["wingman_servers", (("state", "offline"),)] == 1
    # The API's address still wants a token; the listener serves the metrics alone, whatever
    # the path (prometheus-client's server), never the API's answers.
    assert scrape(d).status_code == 401
    elsewhere = httpx.get(f"http://127.0.0.1:{port}/api/servers", timeout=5)
    assert elsewhere.headers["content-type"].startswith("text/plain") and "wingman_servers" in elsewhere.text


@pytest.mark.parametrize("listen", ["9101", "localhost:", "host:99999"])
def test_a_bad_listen_address_is_refused_at_start_with_the_key_named(tmp_path, listen):
    config = tmp_path / "wingman.yml"
    config.write_text(
        yaml.safe_dump(
            {"token": TOKEN, "system": {"root_directory": str(tmp_path / "var")}, "metrics": {"listen": listen}}
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", "serve", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"metrics.listen: Value error, must be host:port, like 127.0.0.1:9101 (got '{listen}')" in done.stderr
    assert not (tmp_path / "var").exists()  # refused at the door: nothing was created
