"""One event in plain words: what happened and why, for people reading a history.

The words are derived from the event's type and data only; the raw event stays beside them in
every machine format, so nothing here needs to be parsed back.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.store.points import iso
from engine.events import RecordedEvent

CAUSES = {
    "operator": "an operator asked for it",
    "panel": "the Panel asked for it",
    "process_ready": "the server printed its ready line",
    "process_exit": "the process exited",
    "exited": "the process exited on its own",
    "stopped": "it was stopped",
    "killed": "it was killed",
    "crash_handler": "the crash handler decided",
    "boot_recovery": "the daemon found it so at boot",
    "preboot_failed": "a pre-boot check failed",
    "launch_failed": "the process could not be launched",
    "cancelled": "the start was cancelled",
    "no_process": "no process was running",
    "panel_create": "the Panel created it",
    "reinstall": "a reinstall asked for it",
    "install_succeeded": "its install script succeeded",
    "install_failed": "its install failed",
    "install_interrupted": "its install was found interrupted at boot",
}


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


def _op(d: dict) -> str:
    return f" (operation {d['operation_id'][:8]})" if d.get("operation_id") else ""


def _exit(d: dict) -> str:
    if d.get("oom_killed"):
        return "was killed for running out of memory"
    if d.get("signal"):
        return f"was killed by {d['signal']}"
    if d.get("exit_code") is not None:
        return f"exited with code {d['exit_code']}"
    return "is gone" + (f" ({d['reason']})" if d.get("reason") else "")


def _registered(d):
    s = (d.get("definition") or {}).get("settings") or {}
    name = ((s.get("meta") or {}).get("name")) or s.get("uuid", "")
    return f"server registered: {name}, runtime {s.get('runtime', 'process')}" + (", suspended" if s.get("suspended") else "")


def _changed(d):
    keys = d.get("changed_keys") or []
    return "configuration changed" + (f": {', '.join(keys[:6])}" + (" …" if len(keys) > 6 else "") if keys else "")


def _process_started(d):
    where = f"pid {d['pid']}" if d.get("pid") else f"container {str(d.get('container_id') or '')[:12]}"
    return ("found the process already running, adopted it" if d.get("adopted") else "process started") + f" ({d.get('runtime')}, {where})"


_WHAT: dict[str, Callable[[dict], str]] = {
    "server.registered": _registered,
    "server.configuration_changed": _changed,
    "server.suspended": lambda d: "server suspended",
    "server.unsuspended": lambda d: "server unsuspended",
    "server.deleted": lambda d: "server deleted",
    "server.websocket_tokens_denied": lambda d: f"websocket tokens refused from now on: {len(d['jtis'])} jti(s)",
    "power.requested": lambda d: f"asked to {d['action']}{_op(d)}" + (
        ", without waiting for the power lock" if d["action"] == "kill"  # a kill never waits for it
        else f", waiting up to {d['wait_seconds']} s for the power lock"),
    "power.started": lambda d: (f"{d['action']} began{_op(d)}" if d.get("lock_acquired", True)
                                else f"{d['action']} went ahead without the power lock{_op(d)}"),
    "power.succeeded": lambda d: f"{d['action']} succeeded{_op(d)}" + (f": {d['detail']}" if d.get("detail") else ""),
    "power.failed": lambda d: f"{d['action']} failed{_op(d)}",
    "power.rejected": lambda d: f"{d['action']} rejected{_op(d)}",
    "power.cancelled": lambda d: f"{d['action']} cancelled{_op(d)}",
    "power.interrupted": lambda d: f"{d['action']} interrupted{_op(d)}",
    "power.stop_timed_out": lambda d: f"stop timed out after {d['timeout_seconds']:g} s; killing the server",
    "state.changed": lambda d: f"state {d['from_state']} → {d['to_state']} ({d['trigger']})",
    "process.started": _process_started,
    "process.exited": lambda d: "the process " + _exit(d),
    "preboot.check_failed": lambda d: f"pre-boot check '{d['check']}' failed",
    "install.started": lambda d: f"{'reinstall' if d.get('reinstall') else 'install'} began ({d['runtime']})",
    "install.adopted": lambda d: (f"install adopted at boot: its installer {str(d['container_id'])[:12]} "
                                  + ("still ran" if d.get("running") else "had exited")),
    "install.succeeded": lambda d: "install succeeded" + (
        f" (exit code {d['exit_code']})" if d.get("script_ran", True) else ": no script ran"),
    "install.failed": lambda d: "install failed" + (f" (exit code {d['exit_code']})" if d.get("exit_code") is not None else ""),
    "install.interrupted": lambda d: "install interrupted",
}


def _why(ev: RecordedEvent) -> str:
    d, m = ev.data, ev.metadata
    if ev.type in ("power.failed", "power.rejected", "power.cancelled", "power.interrupted", "preboot.check_failed",
                   "install.failed", "install.interrupted"):
        why = d.get("reason") or ""
        if d.get("cancelled_by"):
            why += f" (operation {d['cancelled_by'][:8]})"
        return why
    if ev.type == "process.exited" and d.get("reason"):
        return d["reason"]
    cause = d.get("cause") if ev.type == "state.changed" else m.get("cause")
    if cause:
        return CAUSES.get(cause, cause.replace("_", " "))
    if ev.type == "power.requested":
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
        server=ev.stream_id, position=ev.position, version=ev.version, type=ev.type,
        actor=m.get("actor"), channel=m.get("channel"), what=what, why=why,
        operation_id=m.get("operation_id") or d.get("operation_id"), source_ip=m.get("source_ip"),
    )
