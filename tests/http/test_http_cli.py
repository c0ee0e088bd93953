"""The `wingman` CLI against a real daemon: `power ... --follow`, errors with exit codes, and
`servers`. Run as a subprocess with an 80-column terminal (COLUMNS=80), as in a pipe or CI log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid as uuidlib

import pytest

from tests.support.daemon import REPO, TOKEN, definition, free_port
from tests.support.http import WINGS_BAD_ACTION, WINGS_NOT_FOUND
from wingman.engine.statechart import load_statechart

OK = definition()
OK["settings"]["meta"] = {"name": "alpha"}
FAILS = definition(env={"FAIL_AT_BOOT": "1"})


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(servers=[OK, FAILS])


def wingman(*args: str, url: str, token: str = TOKEN, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")}, "COLUMNS": "80", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli", *args, "--url", url, "--token", token],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_power_start_follow_exits_0_and_prints_succeeded(daemon):
    uuid = OK["settings"]["uuid"]
    result = wingman("power", uuid, "start", "--follow", url=daemon.url)
    assert result.returncode == 0, result
    assert "start succeeded" in result.stdout, result.stdout
    with daemon.client() as c:
        assert c.get(f"/api/servers/{uuid}").json()["state"] == "running"
    result = wingman("power", uuid, "kill", "--follow", url=daemon.url)
    assert result.returncode == 0, result
    assert "kill succeeded" in result.stdout
    daemon.wait_state(uuid, "offline")


def test_power_follow_of_a_failing_start_exits_1_with_the_reason(daemon):
    result = wingman("power", FAILS["settings"]["uuid"], "start", "--follow", url=daemon.url)
    assert result.returncode == 1, result
    assert "start failed" in result.stdout and "exit" in result.stdout, result.stdout


def test_power_without_follow_prints_the_operation_and_exits_0(daemon):
    uuid = OK["settings"]["uuid"]
    result = wingman("power", uuid, "kill", url=daemon.url)
    assert result.returncode == 0, result
    op_id = result.stdout.split("operation ", 1)[1].split(":", 1)[0].strip()
    op = daemon.wait_operation(op_id)
    assert op["action"] == "kill" and op["channel"] == "cli", op


def test_power_against_an_unknown_server_exits_1_with_the_message(daemon):
    result = wingman("power", str(uuidlib.uuid4()), "start", "--follow", url=daemon.url)
    assert result.returncode == 1, result
    assert WINGS_NOT_FOUND in result.stderr, result.stderr
    assert "404" in result.stderr


def test_an_error_message_is_printed_whole_not_wrapped(daemon):
    """Scripts grep the CLI's errors: a long message must stay on one line at 80 columns."""
    result = wingman("power", OK["settings"]["uuid"], "jump", url=daemon.url)
    assert result.returncode == 1, result
    assert WINGS_BAD_ACTION in result.stderr, result.stderr


def test_power_with_a_wrong_token_exits_1(daemon):
    result = wingman("power", OK["settings"]["uuid"], "start", url=daemon.url, token="wrong-token-0123456789")
    assert result.returncode == 1, result
    assert "403" in result.stderr


def test_power_against_no_daemon_exits_2():
    result = wingman("power", OK["settings"]["uuid"], "start", url=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2, result
    assert "cannot reach the daemon" in result.stderr


def test_servers_lists_them_as_json(daemon):
    result = wingman("servers", "--json", url=daemon.url)
    assert result.returncode == 0, result
    listed = {s["uuid"]: s for s in json.loads(result.stdout)}
    assert set(listed) == {OK["settings"]["uuid"], FAILS["settings"]["uuid"]}


def test_servers_table_shows_whole_uuids(daemon):
    """The uuid is what every other command takes: the table must not cut it (`a8f3…`) at 80 columns."""
    result = wingman("servers", url=daemon.url)
    assert result.returncode == 0, result
    assert "alpha" in result.stdout
    for doc in (OK, FAILS):
        assert doc["settings"]["uuid"] in result.stdout, result.stdout


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_servers_table_keeps_uuid_and_state_whole_on_narrow_terminals(daemon, columns):
    """At 80 columns and less the state (`offline`, not `offl…`) stays whole; what gives way are
    the less useful columns, and no line is wider than the terminal."""
    result = wingman("servers", url=daemon.url, env={"COLUMNS": str(columns)})
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), result.stdout
    for doc in (OK, FAILS):
        uuid = doc["settings"]["uuid"]
        [row] = [line for line in lines if uuid in line]
        assert any(state in row for state in load_statechart().states), row
        assert "…" not in row.split(uuid)[1].split("│")[1], row  # the state cell is whole
        assert row.rstrip().endswith("│"), row  # the table was not cropped at the edge
    if columns >= 120:
        assert "version" in result.stdout and "runtime" in result.stdout
