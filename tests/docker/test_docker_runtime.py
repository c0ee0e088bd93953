"""The Docker runtime by itself, against a real engine (no power engine involved).

Timeouts here are upper bounds for waiting, never speed assertions: the machine is noisy.
"""

from __future__ import annotations

import asyncio
import shutil
import threading

import docker
import pytest

from tests.support.docker_engine import SocketProxy
from tests.support.docker_runtime import WAIT, Console, spec_for
from tests.support.waiting import eventually_async
from wingman.engine.environments.base import ExitInfo, RuntimeFailure, RuntimeUnavailable
from wingman.engine.environments.docker.runtime import DockerRuntime, container_name

TRAP = (
    "trap 'echo got TERM; exit 0' TERM; trap 'echo got INT; exit 3' INT; echo ready; "
    "while true; do sleep 1 & wait $!; done"
)
ECHO = 'echo ready; while read line; do echo "cmd: $line"; [ "$line" = stop ] && exit 0; done'
SLEEPER = "echo ready; while true; do sleep 1; done"


async def finished(handle) -> ExitInfo:
    return await asyncio.wait_for(handle.wait(), WAIT)


def sdk(url: str) -> docker.APIClient:
    return docker.APIClient(base_url=url, version="auto")


@pytest.mark.docker
async def test_launch_streams_console_applies_config_and_limits(
    tmp_path, docker_runtime, docker_uuids, docker_image, docker_engine
):
    rt = await docker_runtime()
    uuid = docker_uuids.new()
    script = (
        "echo \"motd $MOTD\"; pwd; echo on-disk > marker; printf 'crlf\\r\\nbad \\377 byte\\n'; "
        "echo to-stderr >&2; printf 'no newline at the end'; echo; echo 'Server started'; " + SLEEPER
    )
    spec = spec_for(tmp_path, uuid, script, docker_image, memory_limit=64, cpu_limit=50, pids_limit=100)
    assert isinstance(await rt.check_limits(spec), list)  # warnings depend on the kernel
    console = Console()
    handle = await rt.launch(spec, console)
    await console.wait_for("Server started")
    assert handle.alive and not handle.adopted and handle.container_id
    assert handle.pid and handle.pid > 1
    assert "motd hello" in console.lines and "/home/container" in console.lines
    assert "crlf" in console.lines and "bad \ufffd byte" in console.lines
    assert "to-stderr" in console.lines and "no newline at the end" in console.lines
    assert (spec.folder / "marker").read_text() == "on-disk\n"  # the folder is bind-mounted

    state = await asyncio.to_thread(sdk(docker_engine).inspect_container, container_name(uuid))
    host, config = state["HostConfig"], state["Config"]
    assert config["Labels"]["wingman.server"] == uuid
    assert config["Cmd"] == ["/bin/sh", "-c", script]
    assert config["WorkingDir"] == "/home/container" and config["OpenStdin"] and not config["Tty"]
    assert "MOTD=hello" in config["Env"]
    # Wings' units: 64 MB (10^6 bytes) and its 15 % overhead below 2 GB; a CFS quota, not NanoCpus
    assert host["Memory"] == host["MemorySwap"] == 73_600_000 and host["MemoryReservation"] == 64_000_000
    assert (host["CpuQuota"], host["CpuPeriod"], host["NanoCpus"]) == (50_000, 100_000, 0) and host["PidsLimit"] == 100
    assert host["NetworkMode"] == "pterodactyl_nw"  # Wings' bridge, the default (tests/docker/test_docker_network.py)

    await handle.kill()
    info = await finished(handle)
    assert info == ExitInfo(137, signal=None, oom_killed=False)
    assert not handle.alive
    assert await handle.wait() == info  # awaitable again


@pytest.mark.docker
async def test_fast_exit_is_seen_with_its_last_output(tmp_path, docker_runtime, docker_uuids, docker_image):
    rt = await docker_runtime()
    console = Console()
    handle = await rt.launch(spec_for(tmp_path, docker_uuids.new(), "echo done; exit 5", docker_image), console)
    assert (await finished(handle)).exit_code == 5
    assert console.lines == ["done"]


@pytest.mark.docker
@pytest.mark.parametrize("signame, said, code", [("SIGTERM", "got TERM", 0), ("^C", "got INT", 3)])
async def test_stop_by_signal(tmp_path, docker_runtime, docker_uuids, docker_image, signame, said, code):
    rt = await docker_runtime()
    console = Console()
    handle = await rt.launch(spec_for(tmp_path, docker_uuids.new(), TRAP, docker_image), console)
    await console.wait_for("ready")
    await handle.send_signal(signame)
    assert (await finished(handle)).exit_code == code
    assert said in console.lines


@pytest.mark.docker
async def test_stop_by_command_on_stdin(tmp_path, docker_runtime, docker_uuids, docker_image):
    rt = await docker_runtime()
    console = Console()
    handle = await rt.launch(spec_for(tmp_path, docker_uuids.new(), ECHO, docker_image), console)
    await console.wait_for("ready")
    await handle.send_command("say hi")
    await console.wait_for("cmd: say hi")
    await handle.send_command("stop")
    assert (await finished(handle)).exit_code == 0
    assert "cmd: stop" in console.lines
    with pytest.raises(RuntimeFailure):
        await handle.send_command("too late")


@pytest.mark.docker
async def test_native_stop(tmp_path, docker_runtime, docker_uuids, docker_image):
    rt = await docker_runtime()
    console = Console()
    handle = await rt.launch(spec_for(tmp_path, docker_uuids.new(), TRAP, docker_image), console)
    await console.wait_for("ready")
    await handle.native_stop()
    await finished(handle)
    assert not handle.alive
    assert (await finished(handle)).exit_code == 0
    assert "got TERM" in console.lines


@pytest.mark.docker
async def test_oom_kill_is_reported(tmp_path, docker_runtime, docker_uuids, docker_image):
    rt = await docker_runtime()
    console = Console()
    # `tail` keeps the whole last "line" of 64 MiB of zeros in memory: a real allocation.
    invocation = "echo ready; head -c 64m /dev/zero | tail"
    handle = await rt.launch(spec_for(tmp_path, docker_uuids.new(), invocation, docker_image, memory_limit=16), console)
    info = await finished(handle)
    assert info.oom_killed is True
    assert info.exit_code == 137


@pytest.mark.docker
async def test_a_second_runtime_adopts_a_running_container(tmp_path, docker_runtime, docker_uuids, docker_image):
    first = await docker_runtime()
    spec = spec_for(tmp_path, docker_uuids.new(), ECHO, docker_image)
    console1 = Console()
    original = await first.launch(spec, console1)
    await console1.wait_for("ready")

    second = await docker_runtime()  # as after a daemon restart
    console2 = Console()
    adopted = await second.adopt(spec.config, spec.folder, console2)
    assert adopted is not None and adopted.adopted and adopted.container_id == original.container_id
    await adopted.send_command("from the new daemon")
    await console2.wait_for("cmd: from the new daemon")

    # launch() finds it running too: adopt, do not recreate.
    console3 = Console()
    again = await second.launch(spec, console3)
    assert again.adopted and again.container_id == original.container_id
    await again.send_command("third")
    await console3.wait_for("cmd: third")

    await adopted.kill()
    for handle in (original, adopted, again):
        assert (await finished(handle)).exit_code == 137
    assert await second.adopt(spec.config, spec.folder, Console()) is None


@pytest.mark.docker
async def test_launch_replaces_an_exited_container(tmp_path, docker_runtime, docker_uuids, docker_image):
    rt = await docker_runtime()
    spec = spec_for(tmp_path, docker_uuids.new(), "echo once; exit 3", docker_image)
    first = await rt.launch(spec, Console())
    assert (await finished(first)).exit_code == 3
    console = Console()
    second = await rt.launch(spec, console)
    assert not second.adopted and second.container_id != first.container_id
    assert (await finished(second)).exit_code == 3
    assert console.lines == ["once"]


@pytest.mark.docker
async def test_a_start_clears_the_old_container_before_its_launch_and_never_a_running_one(
    tmp_path, docker_runtime, docker_uuids, docker_image, docker_engine
):
    rt = await docker_runtime()
    spec = spec_for(tmp_path, docker_uuids.new(), "echo once; exit 3", docker_image)
    first = await rt.launch(spec, Console())
    assert (await finished(first)).exit_code == 3
    # The stopped container stays for inspection until the server starts again...
    assert (await asyncio.to_thread(sdk(docker_engine).inspect_container, first.container_id))["State"]["ExitCode"] == 3
    # ...and the start removes it while pre-boot runs, before the launch.
    await rt.clear_for_launch(spec.config)
    await rt.settle()
    with pytest.raises(docker.errors.NotFound):
        await asyncio.to_thread(sdk(docker_engine).inspect_container, first.container_id)
    second = await rt.launch(spec, Console())
    assert not second.adopted and second.container_id != first.container_id
    assert (await finished(second)).exit_code == 3
    # A launch right behind the clearing waits for it (racing it, Docker would answer 409).
    await rt.clear_for_launch(spec.config)
    third = await rt.launch(spec, Console())
    assert (await finished(third)).exit_code == 3
    with pytest.raises(docker.errors.NotFound):
        await asyncio.to_thread(sdk(docker_engine).inspect_container, second.container_id)

    # A container that runs is never cleared: the launch adopts it, as before.
    running_spec = spec_for(tmp_path, docker_uuids.new(), ECHO, docker_image)
    console = Console()
    running = await rt.launch(running_spec, console)
    await console.wait_for("ready")
    await rt.clear_for_launch(running_spec.config)
    again = await rt.launch(running_spec, Console())
    assert again.adopted and again.container_id == running.container_id
    await again.kill()
    assert (await finished(running)).exit_code == 137


@pytest.mark.docker
async def test_container_removed_behind_the_runtimes_back(
    tmp_path, docker_runtime, docker_uuids, docker_image, docker_engine
):
    rt = await docker_runtime()
    console = Console()
    handle = await rt.launch(spec_for(tmp_path, docker_uuids.new(), SLEEPER, docker_image), console)
    await console.wait_for("ready")
    await asyncio.to_thread(sdk(docker_engine).remove_container, handle.container_id, force=True)
    assert await finished(handle) == ExitInfo(None, reason="container removed")


@pytest.mark.docker
async def test_reap_orphan_and_container_states(tmp_path, docker_runtime, docker_uuids, docker_image):
    rt = await docker_runtime()
    running = spec_for(tmp_path, docker_uuids.new(), SLEEPER, docker_image)
    exited = spec_for(tmp_path, docker_uuids.new(), "exit 7", docker_image)
    gone = spec_for(tmp_path, docker_uuids.new(), "true", docker_image)
    console = Console()
    await rt.launch(running, console)
    await console.wait_for("ready")
    await finished(await rt.launch(exited, Console()))

    states = await rt.container_states()
    assert states[running.config.uuid] == {"running": True, "exit_code": None, "oom_killed": False}
    assert states[exited.config.uuid] == {"running": False, "exit_code": 7, "oom_killed": False}
    assert gone.config.uuid not in states

    assert await rt.reap_orphan(exited.config, {}) == ExitInfo(7)
    assert await rt.reap_orphan(gone.config, {}) == ExitInfo(None, reason="container removed")
    # A running container that is not adopted must not stay up unsupervised.
    assert (await rt.reap_orphan(running.config, {})).exit_code == 137
    assert (await rt.container_states())[running.config.uuid]["running"] is False


@pytest.mark.docker
async def test_missing_image_is_a_clear_error(tmp_path, docker_runtime, docker_uuids):
    rt = await docker_runtime()
    spec = spec_for(tmp_path, docker_uuids.new(), "true", "local/absent:nope")
    for attempt in (rt.check_limits(spec), rt.launch(spec, Console())):
        with pytest.raises(RuntimeFailure, match=r"image local/absent:nope is not present on this node$"):
            await attempt


async def test_unreachable_engine_is_reported_not_crashed(tmp_path):
    rt = DockerRuntime(base_url="unix:///nonexistent/wingman/docker.sock")
    await rt.open()  # must not raise
    try:
        assert rt.unavailable and "not reachable" in rt.unavailable
        spec = spec_for(tmp_path, "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11", "true", "local/busybox:test")
        for attempt in (rt.launch(spec, Console()), rt.check_limits(spec), rt.container_states()):
            with pytest.raises(
                RuntimeUnavailable,
                match=r"Docker engine at unix:///nonexistent/wingman/docker.sock is not reachable \(.+\)",
            ):
                await attempt
    finally:
        await rt.close()


@pytest.mark.docker
async def test_threads_stay_bounded_with_many_containers(tmp_path, docker_runtime, docker_uuids, docker_image):
    before = threading.active_count()
    rt = await docker_runtime(max_workers=4)
    consoles = [Console() for _ in range(30)]
    specs = [spec_for(tmp_path, docker_uuids.new(), ECHO, docker_image) for _ in consoles]
    handles = await asyncio.gather(*(rt.launch(s, c) for s, c in zip(specs, consoles, strict=False)))
    await asyncio.gather(*(c.wait_for("ready") for c in consoles))
    # The runtime's own executor (4) + the events watcher; nothing per container.
    assert threading.active_count() <= before + 4 + 1
    await asyncio.gather(*(h.send_command("ping") for h in handles))
    await asyncio.gather(*(c.wait_for("cmd: ping") for c in consoles))
    await asyncio.gather(*(h.send_command("stop") for h in handles))
    assert all(info.exit_code == 0 for info in await asyncio.gather(*(finished(h) for h in handles)))
    assert threading.active_count() <= before + 4 + 1


@pytest.mark.docker
async def test_engine_going_away_and_coming_back(tmp_path, docker_uuids, docker_image, docker_engine):
    proxy = SocketProxy(docker_engine.removeprefix("unix://"))
    await proxy.up()
    rt = DockerRuntime(base_url=f"unix://{proxy.path}")
    await rt.open()
    try:
        survivor_console, victim_console = Console(), Console()
        survivor = await rt.launch(spec_for(tmp_path, docker_uuids.new(), ECHO, docker_image), survivor_console)
        victim = await rt.launch(spec_for(tmp_path, docker_uuids.new(), SLEEPER, docker_image), victim_console)
        await survivor_console.wait_for("ready")
        await victim_console.wait_for("ready")

        await proxy.down()
        with pytest.raises(RuntimeUnavailable, match="not reachable"):
            await rt.launch(spec_for(tmp_path, docker_uuids.new(), "true", docker_image), Console())
        with pytest.raises(RuntimeUnavailable):
            await victim.kill()
        # While the engine is out of reach, one container dies; nobody can tell the runtime yet.
        await asyncio.to_thread(sdk(docker_engine).kill, victim.container_id)
        assert victim.alive and survivor.alive

        await proxy.up()
        # The watcher reconnects, finds the exit by inspection, and re-attaches the survivor.
        assert (await finished(victim)).exit_code == 137

        await eventually_async(lambda: survivor.console_attached, WAIT, "the survivor's console re-attached")
        assert rt.unavailable is None
        await survivor.send_command("still here")
        await survivor_console.wait_for("cmd: still here")
        await survivor.send_command("stop")
        assert (await finished(survivor)).exit_code == 0
    finally:
        await rt.close()
        await proxy.down()
        shutil.rmtree(proxy.dir, ignore_errors=True)
