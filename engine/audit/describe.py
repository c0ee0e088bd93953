"""One event in plain words: what happened and why, for people reading a history.

The words are derived from the event's type and data only; the raw event stays beside them in
every machine format, so nothing here needs to be parsed back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wingman.engine.event_types import Cause, EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.store.points import iso

# Each cause in words, as engine.event_types spells them (a cause not there is shown as it is stored).
CAUSES: dict[str, str] = {cause: cause.words for cause in Cause}


@dataclass
class Line:
    time: str | None
    server: str
    position: int
    version: int
    type: str
    actor: str | None
    channel: str | None
    what: str
    why: str
    operation_id: str | None
    source_ip: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _op(d: dict[str, Any]) -> str:
    return f" (operation {d['operation_id'][:8]})" if d.get("operation_id") else ""


def _exit(d: dict[str, Any]) -> str:
    if d.get("oom_killed"):
        return "was killed for running out of memory"
    if d.get("signal"):
        return f"was killed by {d['signal']}"
    if d.get("exit_code") is not None:
        return f"exited with code {d['exit_code']}"
    return "is gone" + (f" ({d['reason']})" if d.get("reason") else "")


def _registered(d: dict[str, Any]) -> str:
    s = (d.get("definition") or {}).get("settings") or {}
    name = ((s.get("meta") or {}).get("name")) or s.get("uuid", "")
    return f"server registered: {name}, runtime {s.get('runtime', 'process')}" + (
        ", suspended" if s.get("suspended") else ""
    )


def _changed(d: dict[str, Any]) -> str:
    keys = d.get("changed_keys") or []
    return "configuration changed" + (f": {', '.join(keys[:6])}" + (" …" if len(keys) > 6 else "") if keys else "")


def _process_started(d: dict[str, Any]) -> str:
    where = f"pid {d['pid']}" if d.get("pid") else f"container {str(d.get('container_id') or '')[:12]}"
    return (
        "found the process already running, adopted it" if d.get("adopted") else "process started"
    ) + f" ({d.get('runtime')}, {where})"


# What each event type did, in words, from its data (tests/system/test_event_types.py: every type has them).
_WHAT: dict[str, Callable[[dict[str, Any]], str]] = {
    EventType.SERVER_REGISTERED: _registered,
    EventType.CONFIGURATION_CHANGED: _changed,
    EventType.SERVER_SUSPENDED: lambda d: "server suspended",
    EventType.SERVER_UNSUSPENDED: lambda d: "server unsuspended",
    EventType.SERVER_DELETED: lambda d: "server deleted",
    EventType.WEBSOCKET_TOKENS_DENIED: lambda d: f"websocket tokens refused from now on: {len(d['jtis'])} jti(s)",
    EventType.POWER_REQUESTED: lambda d: (
        f"asked to {d['action']}{_op(d)}"
        + (
            ", without waiting for the power lock"
            if d["action"] == "kill"  # a kill never waits for it
            else f", waiting up to {d['wait_seconds']} s for the power lock"
        )
    ),
    EventType.POWER_STARTED: lambda d: (
        f"{d['action']} began{_op(d)}"
        if d.get("lock_acquired", True)
        else f"{d['action']} went ahead without the power lock{_op(d)}"
    ),
    EventType.POWER_SUCCEEDED: lambda d: (
        f"{d['action']} succeeded{_op(d)}" + (f": {d['detail']}" if d.get("detail") else "")
    ),
    EventType.POWER_FAILED: lambda d: f"{d['action']} failed{_op(d)}",
    EventType.POWER_REJECTED: lambda d: f"{d['action']} rejected{_op(d)}",
    EventType.POWER_CANCELLED: lambda d: f"{d['action']} cancelled{_op(d)}",
    EventType.POWER_INTERRUPTED: lambda d: f"{d['action']} interrupted{_op(d)}",
    EventType.STOP_TIMED_OUT: lambda d: f"stop timed out after {d['timeout_seconds']:g} s; killing the server",
    EventType.STATE_CHANGED: lambda d: f"state {d['from_state']} → {d['to_state']} ({d['trigger']})",
    EventType.PROCESS_STARTED: _process_started,
    EventType.PROCESS_EXITED: lambda d: "the process " + _exit(d),
    EventType.PREBOOT_CHECK_FAILED: lambda d: f"pre-boot check '{d['check']}' failed",
    EventType.PROBE_READY: lambda d: f"the {d['kind']} readiness probe answered on {d['address']}: {d['detail']}",
    EventType.PROBE_CHANGED: lambda d: (
        f"the {d['kind']} liveness probe on {d['address']} "
        + ("passes again" if d["passing"] else f"fails ({d['failures']} of {d['failure_threshold']}): {d['detail']}")
    ),
    EventType.PROBE_HUNG: lambda d: (
        f"declared hung: {d['failures']} {d['kind']} liveness probes in a row failed on {d['address']} "
        f"({d['detail']}); killing it"
    ),
    EventType.INSTALL_STARTED: lambda d: f"{'reinstall' if d.get('reinstall') else 'install'} began ({d['runtime']})",
    EventType.INSTALL_ADOPTED: lambda d: (
        f"install adopted at boot: its installer {str(d['container_id'])[:12]} "
        + ("still ran" if d.get("running") else "had exited")
    ),
    EventType.INSTALL_SUCCEEDED: lambda d: (
        "install succeeded" + (f" (exit code {d['exit_code']})" if d.get("script_ran", True) else ": no script ran")
    ),
    EventType.INSTALL_FAILED: lambda d: (
        "install failed" + (f" (exit code {d['exit_code']})" if d.get("exit_code") is not None else "")
    ),
    EventType.INSTALL_INTERRUPTED: lambda d: "install interrupted",
    EventType.ENVIRONMENT_DESTROYED: lambda d: (
        f"its {d['runtime']} environment destroyed"
        + (f": {', '.join(d['removed'])}" if d.get("removed") else ", nothing was left")
    ),
    EventType.FILES_REMOVED: lambda d: (
        f"its folder {d['folder']} " + ("removed" if d.get("existed", True) else "never existed")
    ),
    EventType.FILES_REMOVAL_FAILED: lambda d: (
        f"its folder {d['folder']} could not be removed"
        + (f", what is left is under {d['left_at']}" if d.get("left_at") else "")
    ),
    EventType.CONSOLE_COMMAND: lambda d: f"console command sent: {d['command']}",
    EventType.ACTIVITY_REFUSED: lambda d: (
        f"the Panel refused the activity {d['activity']} (HTTP {d['status']}): set aside"
    ),
    EventType.SERVER_CRASHED: lambda d: (
        "server crashed: the process "
        + _exit(d)
        + (f" after {d['uptime_seconds']:g} s" if d.get("uptime_seconds") else "")
    ),
    EventType.CRASH_DECIDED: lambda d: (
        ("the crash handler restarts the server" + (f" in {d['delay_seconds']:g} s" if d.get("delay_seconds") else ""))
        if d["restart"]
        else "the crash handler leaves it down"
    ),
    EventType.INVENTORY_FAILED: lambda d: (
        f"the Panel's inventory failed (attempt {d['attempt']}), tried again in "
        f"{d['retry_in_seconds']:g} s; going on with {d['servers_recorded']} server(s)"
    ),
    EventType.INVENTORY_RECONCILED: lambda d: (
        f"the Panel's inventory taken: {d['listed']} listed, {d['registered']} registered, "
        f"{d['updated']} updated, {d['removed']} removed, {d['refused']} refused"
    ),
    EventType.PANEL_SERVER_REFUSED: lambda d: (
        f"a server from the Panel's {d['source']} refused: {d.get('uuid') or 'no uuid'}"
    ),
    EventType.PANEL_SERVER_UNLISTED: lambda d: (
        f"the Panel no longer lists the server; it is {d['state']}: removed once offline"
    ),
    EventType.STATECHART_ADOPTED: lambda d: (
        f"statechart {d['chart_hash'][:12]} in force from here ({str(d['decision']).replace('_', ' ')})"
    ),
    EventType.INSTALL_REPORTED: lambda d: (
        f"the Panel {'was' if d['reported'] else 'could not be'} told the "
        f"{'reinstall' if d.get('reinstall') else 'install'} " + ("succeeded" if d["successful"] else "failed")
    ),
    EventType.SCHEDULE_ADDED: lambda d: f"schedule {d['schedule_id']} set (from the {d['source']})",
    EventType.SCHEDULE_REMOVED: lambda d: f"schedule {d['schedule_id']} removed (from the {d['source']})",
    EventType.SCHEDULE_FIRED: lambda d: f"schedule {d['schedule_id']} fired for {d['due']}: {d['steps']} step(s)",
    EventType.SCHEDULE_SKIPPED: lambda d: f"schedule {d['schedule_id']} skipped its run of {d['due']}: {d['reason']}",
    EventType.SCHEDULE_MISSED: lambda d: (
        f"schedule {d['schedule_id']} missed {d['count']} run(s) while the daemon was down: {d['policy']}"
    ),
    EventType.SCHEDULE_RUN_FINISHED: lambda d: f"schedule {d['schedule_id']}'s run {d['outcome']}",
}

# The events whose own data says why (their `reason`), before any cause in their metadata.
_REASONED = frozenset(
    {
        EventType.POWER_FAILED,
        EventType.POWER_REJECTED,
        EventType.POWER_CANCELLED,
        EventType.POWER_INTERRUPTED,
        EventType.PREBOOT_CHECK_FAILED,
        EventType.INSTALL_FAILED,
        EventType.INSTALL_INTERRUPTED,
        EventType.CRASH_DECIDED,
        EventType.ACTIVITY_REFUSED,
        EventType.INVENTORY_FAILED,
        EventType.PANEL_SERVER_REFUSED,
    }
)


def _why(ev: RecordedEvent) -> str:
    d, m = ev.data, ev.metadata
    if ev.type in _REASONED:
        why = d.get("reason") or ""
        if d.get("cancelled_by"):
            why += f" (operation {d['cancelled_by'][:8]})"
        return why
    if ev.type in (EventType.PROCESS_EXITED, EventType.SERVER_CRASHED, EventType.INSTALL_REPORTED) and d.get("reason"):
        return str(d["reason"])
    if ev.type == EventType.FILES_REMOVAL_FAILED:
        return "; ".join(d.get("problems") or ())
    cause = d.get("cause") if ev.type == EventType.STATE_CHANGED else m.get("cause")
    if cause:
        return str(CAUSES.get(cause, cause.replace("_", " ")))
    if ev.type == EventType.POWER_REQUESTED:
        return f"requested by {m.get('actor') or 'someone'} via {m.get('channel') or 'an unknown channel'}"
    return ""


def describe(ev: RecordedEvent) -> Line:
    d = ev.data if isinstance(ev.data, dict) else {}
    m = ev.metadata if isinstance(ev.metadata, dict) else {}
    try:
        what = _WHAT[ev.type](d)
        why = _why(ev)
    except (KeyError, TypeError, ValueError, AttributeError):
        what, why = f"{ev.type} (unreadable data)", ""
    if not isinstance(ev.data, dict):
        what, why = f"{ev.type} (data is not valid JSON)", ""
    elif ev.type not in _WHAT:
        what = f"{ev.type}: {d}"
    return Line(
        time=iso(ev.recorded_at) if not isinstance(ev.recorded_at, str) else ev.recorded_at,
        server=ev.stream_id,
        position=ev.position,
        version=ev.version,
        type=ev.type,
        actor=m.get("actor"),
        channel=m.get("channel"),
        what=what,
        why=why,
        operation_id=m.get("operation_id") or d.get("operation_id"),
        source_ip=m.get("source_ip"),
    )
