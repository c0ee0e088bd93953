"""The power engine with real child processes (the demo game server) on a real SQLite file."""

import asyncio
import os

from tests.conftest import TEST_META
from tests.support.daemon import definition
from tests.support.http import processes_under
from wingman.engine.console.readiness import DoneMatcher
from wingman.engine.statechart import Trigger


async def test_start_reaches_running_on_the_done_line(engine_harness):
    d = definition(env={"BOOT_SECONDS": "0.5"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "succeeded"
        assert h.state(uuid) == "running"
        assert "Server started" in h.processes.console(uuid).lines
        changes = [
            (e.data["from_state"], e.data["to_state"]) for e in await h.events(uuid) if e.type == "state.changed"
        ]
        assert changes == [("offline", "starting"), ("starting", "running")]
        started = [e for e in await h.events(uuid) if e.type == "process.started"][0]
        assert os.getpgid(started.data["pid"]) == started.data["pid"]  # its own process group


async def test_stop_by_command_exits_cleanly(engine_harness):
    d = definition(stop={"type": "command", "value": "stop"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        op = await h.outcome(await h.act(uuid, "stop"))
        assert op.status == "succeeded" and h.state(uuid) == "offline"
        exited = [e for e in await h.events(uuid) if e.type == "process.exited"][-1]
        assert exited.data["exit_code"] == 0 and exited.data["signal"] is None
        assert "Stopping server" in h.processes.console(uuid).lines


async def test_stop_by_signal_delivers_that_signal(engine_harness):
    d = definition(stop={"type": "signal", "value": "^C"})  # Wings spells SIGINT ^C
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        op = await h.outcome(await h.act(uuid, "stop"))
        assert op.status == "succeeded"
        assert any("got SIGINT" in line for line in h.processes.console(uuid).lines)


async def test_stop_timeout_then_kill(engine_harness):
    d = definition(env={"IGNORE_STOP": "1"}, stop_timeout=1)
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        op = await h.outcome(await h.act(uuid, "stop"))
        assert op.status == "succeeded" and h.state(uuid) == "offline"
        types = await h.types(uuid)
        assert types.index("power.stop_timed_out") < types.index("process.exited")
        exited = [e for e in await h.events(uuid) if e.type == "process.exited"][-1]
        assert exited.data["signal"] == "SIGKILL" and exited.data["exit_code"] == 137


async def test_restart_is_stop_then_start_under_one_operation(engine_harness):
    d = definition()
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        first_pid = [e for e in await h.events(uuid) if e.type == "process.started"][-1].data["pid"]
        op = await h.outcome(await h.act(uuid, "restart"))
        assert op.status == "succeeded" and h.state(uuid) == "running"
        events = await h.events(uuid)
        mine = [e for e in events if e.metadata.get("operation_id") == op.id and e.type == "state.changed"]
        assert [e.data["to_state"] for e in mine] == ["stopping", "offline", "starting", "running"]
        assert [e for e in events if e.type == "process.started"][-1].data["pid"] != first_pid


async def test_kill_during_starting_cancels_the_start_and_stays_offline(engine_harness):
    d = definition(env={"BOOT_SECONDS": "5"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        start = await h.act(uuid, "start")
        await h.wait_state(uuid, "starting")
        # The process has launched (and is booting), so the kill has something to kill.
        await h.until_event(uuid, lambda e: e.type == "process.started")
        kill = await h.outcome(await h.act(uuid, "kill"))
        await h.outcome(start)
        assert start.status == "cancelled" and kill.status == "succeeded"
        assert h.state(uuid) == "offline"
        cancelled = [e for e in await h.events(uuid) if e.type == "power.cancelled"][0]
        assert cancelled.data["cancelled_by"] == kill.id
        # Nothing is left that could bring it back: no process, and no operation without an outcome.
        assert processes_under(h.config.data_directory / uuid) == []
        assert h.daemon.registry.open_operations(uuid) == []
        types = await h.types(uuid)
        assert types.count("process.started") == types.count("process.exited") == 1
        assert "Server started" not in h.daemon.processes.console_tail(uuid, 1000)


async def test_kill_during_preboot_aborts_without_a_process(engine_harness, tmp_path):
    # A Panel that never answers keeps pre-boot's sync step busy: the kill lands in pre-boot.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    d = definition()
    uuid = d["settings"]["uuid"]
    harness = engine_harness([d])
    harness.daemon.starter.source.remote = f"http://127.0.0.1:{listener.getsockname()[1]}"
    async with harness as h:
        start = await h.act(uuid, "start")
        await h.wait_state(uuid, "starting")
        kill = await h.outcome(await h.act(uuid, "kill"))
        await h.outcome(start)
        assert (start.status, kill.status, h.state(uuid)) == ("cancelled", "succeeded", "offline")
        assert "process.started" not in await h.types(uuid)
        last = [e for e in await h.events(uuid) if e.type == "state.changed"][-1]
        assert (last.data["trigger"], last.data["cause"]) == ("abort", "cancelled")
    listener.close()


async def test_a_start_aborted_while_its_process_launches_leaves_no_process(engine_harness, monkeypatch):
    """A kill that finds no process while a start is launching one takes the server offline
    ("start aborted"): seen in the chaos run, when the start took the lock after the kill had
    looked for starts to cancel. The process launched a moment later is killed by its start,
    never left running untracked for the next start to launch a second one beside."""
    d = definition(env={"BOOT_SECONDS": "0.5"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        real_launch = h.daemon.starter.launch
        launched = []

        async def launch_then_aborted(prepared, console):
            handle = await real_launch(prepared, console)
            launched.append(handle.pid)
            # What such a kill records, in the moment between the launch and the start's next step.
            assert await h.daemon.journal.transition_if_allowed(uuid, Trigger.ABORT, "killed", TEST_META, None)
            return handle

        with monkeypatch.context() as stand_in:
            stand_in.setattr(h.daemon.starter, "launch", launch_then_aborted)
            start = await h.outcome(await h.act(uuid, "start"), timeout=20)
        assert processes_under(h.config.data_directory / uuid) == []
        assert (start.status, h.state(uuid)) == ("failed", "offline")
        assert "aborted" in start.reason and "killed" in start.reason, start.reason
        events = await h.events(uuid)
        started = [e for e in events if e.type == "process.started"]
        exited = [e for e in events if e.type == "process.exited"]
        assert [e.data["pid"] for e in started] == launched and len(exited) == 1
        assert exited[0].metadata["cause"] == "killed"  # not a crash: no restart policy answers it
        assert "crash.decided" not in [e.type for e in events]
        # The next start (the real launch again) finds the server as a kill leaves it, and runs
        # the only process.
        assert (await h.outcome(await h.act(uuid, "start"), timeout=60)).status == "succeeded"
        groups = {os.getpgid(pid) for pid in processes_under(h.config.data_directory / uuid)}
        assert len(groups) == 1


async def test_a_start_aborted_while_its_process_boots_kills_it_at_the_done_line(engine_harness, monkeypatch):
    """The same kill's "start aborted", when its commit lands only once the process is booting:
    the start's `ready` is refused, and the start kills the process it launched."""
    d = definition(env={"BOOT_SECONDS": "0.5"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        real_launch = h.daemon.starter.launch
        aborts = []

        async def launch_aborted_at_the_done_line(prepared, console):
            matcher = DoneMatcher(prepared.spec.config.done, prepared.spec.config.strip_ansi)

            def sink(line: str) -> None:
                if not aborts and matcher.matches(line):
                    # Queued before the start sees its done-line: the abort takes the server's
                    # ordering lock first, so `ready` finds the server offline.
                    aborts.append(
                        asyncio.ensure_future(
                            h.daemon.journal.transition_if_allowed(uuid, Trigger.ABORT, "killed", TEST_META, None)
                        )
                    )
                console(line)

            return await real_launch(prepared, sink)

        monkeypatch.setattr(h.daemon.starter, "launch", launch_aborted_at_the_done_line)
        start = await h.outcome(await h.act(uuid, "start"), timeout=20)
        assert len(aborts) == 1 and aborts[0].result() is True
        assert processes_under(h.config.data_directory / uuid) == []
        assert (start.status, h.state(uuid)) == ("failed", "offline")
        assert "aborted" in start.reason and "killed" in start.reason, start.reason
        types = await h.types(uuid)
        assert types.count("process.started") == types.count("process.exited") == 1
        assert "crash.decided" not in types
        changes = [(e.data["trigger"], e.data["cause"]) for e in await h.events(uuid) if e.type == "state.changed"]
        assert changes[-2:] == [(Trigger.START, "operator"), (Trigger.ABORT, "killed")], changes  # never `ready`


async def test_a_process_that_exits_on_its_own_goes_offline(engine_harness):
    d = definition()
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        await h.processes.handle(uuid).send_command("crash")
        await h.wait_state(uuid, "offline", timeout=20)
        last = [e for e in await h.events(uuid) if e.type == "state.changed"][-1]
        assert (last.data["trigger"], last.data["cause"]) == ("exited", "exited")
        exited = [e for e in await h.events(uuid) if e.type == "process.exited"][-1]
        assert exited.data["exit_code"] == 139


async def test_a_boot_that_dies_before_ready_fails_the_start(engine_harness):
    d = definition(env={"FAIL_AT_BOOT": "1"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "failed" and "exit code 3" in op.reason
        assert h.state(uuid) == "offline"


async def test_start_on_a_running_server_is_rejected(engine_harness):
    d = definition()
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "rejected" and op.reason == "server is running"


async def test_lock_wait_gives_up_after_wait_seconds(engine_harness):
    d = definition(env={"BOOT_SECONDS": "4"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        first = await h.act(uuid, "start")
        await h.wait_state(uuid, "starting")
        impatient = await h.outcome(await h.act(uuid, "stop", wait=1))
        assert impatient.status == "rejected" and "lock" in impatient.reason
        patient = await h.act(uuid, "stop", wait=60)
        assert (await h.outcome(first)).status == "succeeded"
        assert (await h.outcome(patient)).status == "succeeded"
        assert h.state(uuid) == "offline"
        # The patient stop took the lock only after the start had its outcome.
        types = [(e.type, e.data.get("operation_id")) for e in await h.events(uuid)]
        assert types.index(("power.succeeded", first.id)) < types.index(("power.started", patient.id))


async def test_kill_does_not_wait_for_a_busy_lock(engine_harness):
    d = definition(env={"IGNORE_STOP": "1"}, stop_timeout=120)
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        await h.outcome(await h.act(uuid, "start"))
        stop = await h.act(uuid, "stop")
        await h.wait_state(uuid, "stopping")
        kill = await h.outcome(await h.act(uuid, "kill"), timeout=20)
        assert kill.status == "succeeded"
        started = [e for e in await h.events(uuid) if e.type == "power.started" and e.data["operation_id"] == kill.id]
        assert started[0].data["lock_acquired"] is False
        assert (await h.outcome(stop)).status == "succeeded"  # the stop sees the process gone
        assert h.state(uuid) == "offline"


async def test_suspended_server_start_is_refused_and_recorded(engine_harness):
    import pytest

    from wingman.engine.power.outcomes import SuspendedServer

    d = definition(suspended=True)
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        with pytest.raises(SuspendedServer):
            await h.act(uuid, "start")
        assert (await h.types(uuid))[-2:] == ["power.requested", "power.rejected"]
        assert h.state(uuid) == "offline"


async def test_unfinished_operations_are_marked_interrupted_at_boot(engine_harness):
    d = definition(env={"BOOT_SECONDS": "30"})
    uuid = d["settings"]["uuid"]
    first = engine_harness([d])
    await first.daemon.start()
    op = await first.act(uuid, "start")
    # Not just `starting`: that is recorded before pre-boot and the launch, and a shutdown then
    # would leave no process to adopt.
    await first.until_event(uuid, lambda e: e.type == "process.started")
    await first.daemon.stop()  # shutdown cancels the operation without an outcome
    async with engine_harness([d]) as second:
        assert second.daemon.registry.operation_in_memory(op.id).status == "interrupted"
        # Its process outlived the daemon and is adopted; it is still booting (no done-line
        # yet), so it stays `starting` until it prints one.
        assert second.state(uuid) == "starting" and second.daemon.recovered["adopted"] == 1
        await second.outcome(await second.act(uuid, "kill"))
        assert second.state(uuid) == "offline"


async def test_an_operation_is_reported_from_one_read_of_the_log(engine_harness, monkeypatch):
    # What GET /api/operations/{id} answers: the log moves on between reading the operation's
    # events and answering (seen in CI); the status must still agree with the events returned.
    d = definition(env={"BOOT_SECONDS": "1"})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        op = await h.act(uuid, "start")
        store = h.daemon.store
        read = store.events_for_operation

        async def read_then_let_the_start_finish(operation_id):
            events = await read(operation_id)
            await h.outcome(op)
            return events

        monkeypatch.setattr(store, "events_for_operation", read_then_let_the_start_finish)
        found, events = await h.daemon.registry.find_operation(op.id)
        assert op.status == "succeeded"  # the live view has moved on
        types = [e.type for e in events]
        assert "power.succeeded" not in types, "the read was meant to happen before the start finished"
        assert found.status in ("queued", "running"), (found.status, types)
        assert found.id == op.id and found.action == "start" and found.server == uuid


async def test_the_daemon_tells_the_console_what_it_does(engine_harness):
    """Daemon messages (pre-boot steps, a stop that timed out) reach console listeners, apart from
    the server's own output, and stay out of its logs, as in Wings."""
    d = definition(env={"IGNORE_STOP": "1"}, stop_timeout=1)
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        heard: list[tuple[str, str]] = []
        h.processes.console(uuid).listen(lambda kind, text: heard.append((kind, text)))
        await h.outcome(await h.act(uuid, "start"))
        await h.outcome(await h.act(uuid, "stop"))
        notes = [text for kind, text in heard if kind == "daemon"]
        assert any("file permissions" in n for n in notes), notes
        assert "The server did not stop within 1 s; killing it." in notes
        assert ("output", "Server started") in heard
        assert not any("file permissions" in line for line in h.processes.console_tail(uuid, 1000))
