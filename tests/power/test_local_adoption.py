"""Local servers outlive the daemon: a daemon that stops (or dies) leaves them running, and the
next one adopts them, console and all, by their recorded identity (pid, start time, boot). A pid
that now belongs to another process is never taken for the server, and never killed."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.daemon import definition
from tests.support.http import processes_under
from tests.support.waiting import eventually_async
from wingman.engine.environments.local.identity import boot_id, identify
from wingman.engine.events import Metadata, NewEvent, ProcessStarted


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def started_pid(h, uuid: str) -> int:
    return [e for e in await h.events(uuid) if e.type == "process.started"][-1].data["pid"]


async def running_under_a_first_daemon(engine_harness, d: dict):
    """A daemon that has started the server: (that daemon, the server's pid)."""
    first = engine_harness([d])
    await first.daemon.start()
    await first.outcome(await first.act(d["settings"]["uuid"], "start"))
    return first, await started_pid(first, d["settings"]["uuid"])


async def test_a_clean_shutdown_leaves_the_server_running_and_the_next_daemon_adopts_it(engine_harness):
    d = definition()
    uuid = d["settings"]["uuid"]
    first, pid = await running_under_a_first_daemon(engine_harness, d)
    await first.daemon.stop()
    assert alive(pid), "a daemon stop must not stop local servers any more"
    async with engine_harness([d]) as second:
        assert second.state(uuid) == "running"
        assert second.daemon.recovered["adopted"] == 1
        adopted = [e for e in await second.events(uuid) if e.type == "process.started"][-1]
        assert adopted.data["adopted"] and adopted.data["pid"] == pid
        assert adopted.metadata["cause"] == "boot_recovery"
        # The console is reachable again: a command goes in, its answer comes back.
        await second.processes.send_command(uuid, "say back again")
        await eventually_async(
            lambda: "[Server] back again" in second.processes.console_tail(uuid, 50), 30, "the adopted server's answer"
        )
        # Recent output from before the restart is in the buffer too.
        assert "Server started" in second.processes.console_tail(uuid, 50)
        # Its own stop works on the adopted process, and its exit is recorded.
        stop = await second.outcome(await second.act(uuid, "stop"))
        assert stop.status == "succeeded" and second.state(uuid) == "offline"
        assert not alive(pid)
        exited = [e for e in await second.events(uuid) if e.type == "process.exited"][-1]
        assert exited.data["exit_code"] == 0, exited.data  # from the status file: it was not our child


async def test_a_server_survives_the_daemons_death_and_is_adopted(engine_harness):
    d = definition()
    uuid = d["settings"]["uuid"]
    first, pid = await running_under_a_first_daemon(engine_harness, d)
    # A crash of the daemon: nothing of it stops or tells the server.
    await first.daemon.store.close()
    await first.daemon.db.dispose()
    async with engine_harness([d]) as second:
        assert second.state(uuid) == "running" and alive(pid)
        kill = await second.outcome(await second.act(uuid, "kill"))
        assert kill.status == "succeeded"
        await eventually_async(lambda: not alive(pid), 30, f"the server process {pid} to end")
        assert processes_under(second.config.data_directory / uuid) == []
        assert second.state(uuid) == "offline"


async def test_an_adopted_servers_crash_is_recorded_with_its_exit_code(engine_harness):
    d = definition(restart_policy={"policy": "no"})
    uuid = d["settings"]["uuid"]
    first = engine_harness([d])
    await first.daemon.start()
    await first.outcome(await first.act(uuid, "start"))
    await first.daemon.stop()
    async with engine_harness([d]) as second:
        await second.processes.send_command(uuid, "crash")  # the demo server exits with 139
        await second.wait_state(uuid, "offline")
        exited = [e for e in await second.events(uuid) if e.type == "process.exited"][-1]
        assert (exited.data["exit_code"], exited.data["signal"]) == (139, "SIGSEGV")


async def test_a_pid_that_now_belongs_to_another_process_is_not_adopted_nor_killed(engine_harness):
    """The kernel reuses pids: the one in the log may, after the daemon was down, be another
    process's. That process is neither adopted nor killed; the server is recorded as gone."""
    d = definition()
    uuid = d["settings"]["uuid"]
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        first, pid = await running_under_a_first_daemon(engine_harness, d)
        # What the log says of the server's process, as if the kernel had since given its pid to
        # the stranger: the stranger's pid, with a start time the stranger does not have.
        other = identify(stranger.pid)
        await first.daemon.store.append(
            uuid,
            [
                NewEvent.of(
                    ProcessStarted(
                        runtime="process", pid=stranger.pid, start_ticks=other.start_ticks - 1, boot_id=boot_id()
                    ),
                    Metadata(actor="test", channel="test"),
                )
            ],
        )
        # The daemon dies, and the server with it.
        await first.daemon.store.close()
        await first.daemon.db.dispose()
        os.killpg(pid, signal.SIGKILL)
        await eventually_async(lambda: not alive(pid), 30, f"the server process {pid} to end")
        async with engine_harness([d]) as second:
            assert second.state(uuid) == "offline"
            assert second.daemon.recovered == {**second.daemon.recovered, "adopted": 0, "reaped": 1}
            exited = [e for e in await second.events(uuid) if e.type == "process.exited"][-1]
            assert "belongs to another process" in exited.data["reason"]
        assert alive(stranger.pid), "boot recovery must never kill a process that merely reused the pid"
    finally:
        stranger.kill()
        stranger.wait()


async def test_a_server_adopted_while_booting_is_running_once_it_prints_its_done_line(engine_harness):
    d = definition(env={"BOOT_SECONDS": "2"})
    uuid = d["settings"]["uuid"]
    first = engine_harness([d])
    await first.daemon.start()
    await first.act(uuid, "start")
    await first.until_event(uuid, lambda e: e.type == "process.started")
    await first.daemon.stop()  # mid-boot: the start is interrupted, the process boots on
    async with engine_harness([d]) as second:
        await second.wait_state(uuid, "running")
        ready = [e for e in await second.events(uuid) if e.type == "state.changed"][-1]
        assert (ready.data["trigger"], ready.data["cause"]) == ("ready", "boot_recovery")
        assert "Server started" in second.processes.console_tail(uuid, 50)
        await second.outcome(await second.act(uuid, "kill"))
