"""The daemon's Docker runtime loads the docker SDK and connects when a server first needs it
(engine.environments.docker.on_demand); against a real engine, see test_docker_daemon.py and
test_docker_recovery.py, which go through it."""

import subprocess
import sys

import pytest

from tests.support.daemon import REPO
from tests.support.docker_runtime import Console, spec_for
from wingman.engine.environments.base import RuntimeUnavailable
from wingman.engine.environments.docker.on_demand import OnDemandDockerRuntime

UNREACHABLE = "unix:///nonexistent/wingman/docker.sock"


def test_the_daemon_does_not_load_the_docker_sdk_until_a_server_needs_it():
    sdk = ("docker", "requests", "wingman.engine.environments.docker.runtime")
    code = f"import sys, api.app, api.cli.main, engine.daemon; print(sorted(m for m in {sdk!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_first_use_connects_and_reports_an_unreachable_engine(tmp_path):
    rt = OnDemandDockerRuntime(base_url="unix:///elsewhere.sock")
    await rt.open()
    assert rt.runtime is None
    with pytest.raises(AttributeError, match="not connected yet"):
        _ = rt.container_states
    rt.base_url = UNREACHABLE  # still changeable: nothing is connected
    spec = spec_for(tmp_path, "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11", "true", "local/busybox:test")
    try:
        with pytest.raises(RuntimeUnavailable, match=rf"Docker engine at {UNREACHABLE} is not reachable"):
            await rt.check_limits(spec)
        first = rt.runtime
        assert first is not None and "not reachable" in rt.unavailable
        with pytest.raises(RuntimeUnavailable, match="not reachable"):
            await rt.launch(spec, Console())
        assert rt.runtime is first  # connected once
    finally:
        await rt.close()


async def test_a_call_after_close_does_not_connect():
    rt = OnDemandDockerRuntime(base_url=UNREACHABLE)
    await rt.close()
    with pytest.raises(RuntimeUnavailable, match="shutting down"):
        await rt.reap_orphan(None, {})
    assert rt.runtime is None
