"""A real Prometheus (Debian's `prometheus`) scrapes a real daemon with its token: a power operation
shows in a PromQL query through Prometheus' HTTP API, the shipped alerting rules load and pass
`promtool`'s checks and unit tests, and every query of the shipped Grafana dashboard is valid
PromQL over metrics the daemon really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.daemon import REPO, TOKEN, definition, free_port, unavailable
from tests.support.waiting import eventually

MONITORING = REPO / "deploy" / "monitoring"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


@pytest.fixture
def tools() -> tuple[str, str]:
    if PROMETHEUS is None or PROMTOOL is None:
        unavailable("Debian's prometheus package (prometheus, promtool) is not installed; .ci/system.sh installs it")
    return PROMETHEUS, PROMTOOL


def test_the_alerting_rules_load_and_fire_as_their_unit_tests_say(tools):
    promtool = tools[1]
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


@pytest.fixture
def prometheus(tools, tmp_path):
    """A Prometheus of the test's own, scraping the targets the test adds, every second."""
    started: list[subprocess.Popen] = []

    def start(target: str) -> str:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(MONITORING / "alerts.yml")],
            "scrape_configs": [
                {
                    "job_name": "wingman",
                    "authorization": {"type": "Bearer", "credentials": TOKEN},
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = open(tmp_path / "prometheus.log", "wb")  # closed with the process, below
        proc = subprocess.Popen(
            [
                tools[0],
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        proc.log = log
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        eventually(
            lambda: httpx.get(url + "/-/ready", timeout=2).status_code == 200,
            60,
            lambda: "Prometheus to be ready:\n" + (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:],
            ignoring=(httpx.HTTPError,),
        )
        return url

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.log.close()


def declared(exposition: str) -> set[str]:
    """The sample names a Prometheus text exposition declares with its `# TYPE` lines."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            names.update(name + suffix for suffix in suffixes)
    return names


def query(url: str, promql: str) -> dict:
    r = httpx.get(url + "/api/v1/query", params={"query": promql}, timeout=10)
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_scrapes_the_daemon_and_counts_a_power_operation(daemon_process, prometheus):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    url = prometheus(f"127.0.0.1:{d.port}")
    with d.client() as c:
        r = c.post(f"/api/servers/{uuid}/power", json={"action": "start"})
        assert r.status_code == 202
        assert d.wait_operation(r.json()["id"])["status"] == "succeeded"

    def counted() -> list:
        return query(url, 'wingman_power_operations_total{action="start",outcome="succeeded"}')["result"]

    found = eventually(counted, 60, "Prometheus to hold the start's count")
    assert [sample["value"][1] for sample in found] == ["1"]
    assert found[0]["metric"]["job"] == "wingman"
    up = eventually(lambda: query(url, 'up{job="wingman"}')["result"], 30, "the target's `up`")
    assert up[0]["value"][1] == "1"
    running = eventually(
        lambda: query(url, 'wingman_servers{state="running"} == 1')["result"], 30, "a running server in Prometheus"
    )
    assert len(running) == 1
    rules = httpx.get(url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {rule["name"] for group in rules for rule in group["rules"]} >= {
        "WingmanServerCrashLooping",
        "WingmanCheckpointsNotSigned",
        "WingmanStoreFailingCommits",
    }
    assert all(rule["health"] == "ok" for group in rules for rule in group["rules"])

    # The dashboard: every query runs, and names only metrics this daemon declares (a family
    # with no sample yet, crashes say, is declared all the same).
    exposed = declared(httpx.get(d.url + "/metrics", headers=d.headers, timeout=10).text)
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs
    for expr in exprs:
        query(url, expr.replace("$instance", ".*"))
        for name in re.findall(r"\bwingman_[a-z_]+", expr):
            assert name in exposed, f"the dashboard asks for {name}, which the daemon does not expose"


def test_the_dashboard_is_a_grafana_dashboard():
    dashboard = json.loads(Path(MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["targets"] for panel in dashboard["panels"])
