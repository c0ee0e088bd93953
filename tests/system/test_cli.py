"""The `wingman` command as a user runs it: first run, db upgrade, errors with exit codes."""

import os
import signal
import sqlite3
import subprocess
import sys

import httpx
import pytest
import yaml

from tests.support.daemon import REPO, TOKEN, free_port, kill_leftovers
from tests.support.waiting import eventually
from wingman.api.cli.defaults import write_default_config

WINGMAN = [sys.executable, "-m", "wingman.api.cli"]


def run(args, cwd, **kw):
    return subprocess.run(
        [*WINGMAN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        **kw,
    )


def test_first_serve_writes_a_config_with_a_demo_server_that_starts(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [*WINGMAN, "serve", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    try:
        config = tmp_path / "wingman.yml"
        url = f"http://127.0.0.1:{port}"
        # The daemon answers once its config is in place (any answer will do).

        def answers() -> bool:
            assert proc.poll() is None, "the daemon exited"
            httpx.get(f"{url}/api/system")
            return True

        eventually(answers, 60, "the daemon to answer", interval=0.1, ignoring=(httpx.HTTPError,))
        doc = yaml.safe_load(config.read_text())
        assert (config.stat().st_mode & 0o777) == 0o600  # the token is a secret
        token, demo = doc["token"], doc["servers"][0]["settings"]["uuid"]
        headers = {"Authorization": f"Bearer {token}"}
        servers = httpx.get(f"{url}/api/servers", headers=headers).json()
        assert [s["uuid"] for s in servers] == [demo]
        result = run(["power", demo, "start", "--follow", "--url", url, "--token", token], tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "start succeeded" in result.stdout
        logs = httpx.get(f"{url}/api/servers/{demo}/logs", headers=headers).json()["data"]
        assert "Server started" in logs
        assert (tmp_path / "var" / "wingman.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        kill_leftovers(tmp_path)  # the demo server outlives the daemon, as servers do (adopted at the next boot)
    assert token in out  # shown once, on first run
    # Into a log file (not a terminal), each start-up line is whole, not wrapped at 80 columns.
    lines = out.splitlines()
    wrote = next(line for line in lines if line.startswith("Wrote a default config to "))
    assert wrote.endswith(f"with a demo server {demo}.") and len(wrote) > 80, out
    listening = next(line for line in lines if line.startswith("wingman listening on "))
    assert listening.endswith("wingman.db)"), out
    assert proc.returncode == 0


def test_default_config_is_born_0600_whole_and_never_overwrites_one(tmp_path):
    old = os.umask(0)  # the most permissive umask: the mode must not come from it
    try:
        path = tmp_path / "conf" / "wingman.yml"
        token, demo = write_default_config(path)
        assert (path.stat().st_mode & 0o777) == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["wingman.yml"]  # no temporary left
        doc = yaml.safe_load(path.read_text())
        assert doc["token"] == token and doc["servers"][0]["settings"]["uuid"] == demo
        before = path.read_bytes()
        with pytest.raises(FileExistsError):
            write_default_config(path)
        assert path.read_bytes() == before
        assert [p.name for p in path.parent.iterdir()] == ["wingman.yml"]
    finally:
        os.umask(old)


def test_db_upgrade_creates_the_schema_at_head(tmp_path):
    (tmp_path / "wingman.yml").write_text(yaml.safe_dump({"token": "a-token-long-enough"}))
    result = run(["db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0001_events" in result.stdout or "revision" in result.stdout
    with sqlite3.connect(tmp_path / "var" / "wingman.db") as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        revision = db.execute("select version_num from alembic_version").fetchone()[0]
    assert "events" in tables
    assert revision in result.stdout


def test_missing_or_bad_config_is_a_clear_error(tmp_path):
    missing = run(["db", "upgrade", "--config", "nope.yml"], tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "bad.yml").write_text("api: {port: 80}\n")
    bad = run(["db", "upgrade", "--config", "bad.yml"], tmp_path)
    assert bad.returncode == 2 and "`token` is required" in bad.stderr
    (tmp_path / "worse.yml").write_text("token: a-token-long-enough\napi: {port: many}\n")
    worse = run(["db", "upgrade", "--config", "worse.yml"], tmp_path)
    assert worse.returncode == 2 and "api.port" in worse.stderr
    assert not (tmp_path / "var").exists()  # nothing was written


def test_power_against_no_daemon_says_so(tmp_path):
    result = run(
        [
            "power",
            "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11",
            "start",
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "--token",
            "x",
        ],
        tmp_path,
    )
    assert result.returncode == 2 and "cannot reach the daemon" in result.stderr


def test_a_config_file_in_json_is_read_as_yaml_reads_it(tmp_path):
    """A generated config in JSON (which is YAML) takes the JSON parser; the result is the same."""
    import json

    from wingman.engine.config import load_config

    doc = {"token": TOKEN, "api": {"port": 8123}, "servers": [{"settings": {"uuid": "u1", "environment": {"A": "é"}}}]}
    as_json, as_yaml = tmp_path / "a.yml", tmp_path / "b.yml"
    as_json.write_text(json.dumps(doc, indent=2))
    as_yaml.write_text(yaml.safe_dump(doc))
    assert load_config(as_json).model_dump() | {"source": None} == load_config(as_yaml).model_dump() | {"source": None}
    flow = tmp_path / "c.yml"
    flow.write_text("{token: " + TOKEN + ", api: {port: 8124}}")  # YAML flow style, not JSON: still read
    assert load_config(flow).api.port == 8124
