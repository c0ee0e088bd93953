"""The words of the log, spelled once: every event type and every cause the daemon records.

Both are `StrEnum`s, so a member is its string: what is stored, sent as JSON and compared in tests
is exactly the value (`EventType.STATE_CHANGED == "state.changed"`). Each member carries its
meaning beside it: an event type what it records (`summary`), a cause its wording in the audit
(`words`, read by engine.audit.describe). The event classes take their type from here
(engine.events, engine.install_events), and the table of both in docs/audit.md is generated from
here (`python -m wingman.engine.event_types --write`); tests/system/test_event_types.py fails when they differ.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path


class EventType(StrEnum):
    """Every event type, as stored in the log's `type` column."""

    summary: str

    def __new__(cls, value: str, summary: str) -> EventType:
        member = str.__new__(cls, value)
        member._value_ = value
        member.summary = summary
        return member

    # servers
    SERVER_REGISTERED = "server.registered", "a server's definition was recorded for the first time"
    CONFIGURATION_CHANGED = "server.configuration_changed", "a server's definition changed"
    SERVER_SUSPENDED = "server.suspended", "the server was suspended"
    SERVER_UNSUSPENDED = "server.unsuspended", "the server was unsuspended"
    SERVER_DELETED = "server.deleted", "the server was deleted (its history stays)"
    ENVIRONMENT_DESTROYED = "server.environment_destroyed", "a delete removed what the server's runtime kept for it"
    FILES_REMOVED = "server.files_removed", "a delete removed the server's folder"
    FILES_REMOVAL_FAILED = (
        "server.files_removal_failed",
        "a delete could not remove the server's folder, or not all of it",
    )
    WEBSOCKET_TOKENS_DENIED = (
        "server.websocket_tokens_denied",
        "websocket tokens with these ids are refused from now on",
    )
    CONSOLE_COMMAND = "console.command", "a websocket user sent a line to the server's console"
    ACTIVITY_REFUSED = "panel.activity_refused", "the Panel refused an activity entry: it is set aside"
    # power operations
    POWER_REQUESTED = "power.requested", "a power action was asked for: an operation begins"
    POWER_STARTED = "power.started", "the operation took the power lock (a kill goes ahead without it)"
    POWER_REJECTED = "power.rejected", "outcome: the operation was refused"
    POWER_SUCCEEDED = "power.succeeded", "outcome: the operation succeeded"
    POWER_FAILED = "power.failed", "outcome: the operation failed"
    POWER_CANCELLED = "power.cancelled", "outcome: another operation cancelled it"
    POWER_INTERRUPTED = "power.interrupted", "outcome: the daemon stopped while it was in flight"
    STOP_TIMED_OUT = "power.stop_timed_out", "a stop was not done in time: the server is killed"
    # state and process
    STATE_CHANGED = "state.changed", "the power state changed, by a statechart trigger"
    PROCESS_STARTED = "process.started", "the server's process started, or was adopted"
    PROCESS_EXITED = "process.exited", "the server's process exited"
    SERVER_CRASHED = "server.crashed", "the process ended without an operator's stop or kill"
    CRASH_DECIDED = "crash.decided", "what the crash handler does about a crash, and why"
    PREBOOT_CHECK_FAILED = "preboot.check_failed", "a check before a start failed"
    # probes (engine.probes)
    PROBE_READY = "probe.ready", "the readiness probe first answered after a launch: the server is running"
    PROBE_CHANGED = "probe.changed", "a liveness probe went from passing to failing, or back"
    PROBE_HUNG = "probe.hung", "failure_threshold liveness failures in a row: the server is declared hung and killed"
    # the Panel
    INVENTORY_FAILED = "panel.inventory_failed", "the Panel's list of servers could not be had"
    INVENTORY_RECONCILED = "panel.inventory_reconciled", "the node now holds the servers the Panel lists"
    PANEL_SERVER_REFUSED = "panel.server_refused", "a server the Panel sent could not be taken"
    PANEL_SERVER_UNLISTED = "panel.server_unlisted", "the Panel no longer lists a server that is not offline"
    INSTALL_REPORTED = "panel.install_reported", "what the Panel was told of an install"
    # the node (engine.charts)
    STATECHART_ADOPTED = (
        "node.statechart_adopted",
        "the statechart in force from here on (its text and hash), and who decided (docs/statechart.md)",
    )
    # installs
    INSTALL_STARTED = "install.started", "an install began"
    INSTALL_ADOPTED = "install.adopted", "boot recovery found an install's installer container and goes on from it"
    INSTALL_SUCCEEDED = "install.succeeded", "outcome: the install succeeded"
    INSTALL_FAILED = "install.failed", "outcome: the install failed"
    INSTALL_INTERRUPTED = "install.interrupted", "outcome: boot recovery found the install cut short"
    # schedules (engine.schedules)
    SCHEDULE_ADDED = "schedule.added", "a schedule was added to the server, or changed (from its definition or the API)"
    SCHEDULE_REMOVED = "schedule.removed", "a schedule was removed from the server"
    SCHEDULE_FIRED = "schedule.fired", "a schedule came due and its conditions held: a run of its steps begins"
    SCHEDULE_SKIPPED = "schedule.skipped", "a schedule came due and did not run, and why"
    SCHEDULE_MISSED = "schedule.missed", "at boot: runs due while the daemon was down, and what its policy decided"
    SCHEDULE_RUN_FINISHED = (
        "schedule.run_finished",
        "outcome of a schedule's run: succeeded, failed, cancelled or abandoned",
    )


class Cause(StrEnum):
    """Why something happened: the `cause` of a state change and of an event's metadata."""

    words: str

    def __new__(cls, value: str, words: str) -> Cause:
        member = str.__new__(cls, value)
        member._value_ = value
        member.words = words
        return member

    # who asked
    OPERATOR = "operator", "an operator asked for it"
    PANEL = "panel", "the Panel asked for it"
    CONFIG_FILE = "config_file", "the config file said so"
    # a start and its process
    PROCESS_READY = "process_ready", "the server printed its ready line"
    PROBE_READY = "probe_ready", "its readiness probe answered"
    PROCESS_EXIT = "process_exit", "the process exited"
    EXITED = "exited", "the process exited on its own"
    STOPPED = "stopped", "it was stopped"
    KILLED = "killed", "it was killed"
    PREBOOT_FAILED = "preboot_failed", "a pre-boot check failed"
    LAUNCH_FAILED = "launch_failed", "the process could not be launched"
    CANCELLED = "cancelled", "the start was cancelled"
    NO_PROCESS = "no_process", "no process was running"
    SYNC = "sync", "its definition was synced from the Panel before a start"
    # the daemon
    CRASH = "crash", "the crash handler decided"
    CRASH_HANDLER = "crash_handler", "the crash handler decided"
    UNRESPONSIVE = "unresponsive", "it stopped answering its liveness probe"
    BOOT_RECOVERY = "boot_recovery", "the daemon found it so at boot"
    DAEMON_SHUTDOWN = "daemon_shutdown", "the daemon was shutting down"
    DELETE = "delete", "the server is being deleted"
    STATECHART_CHANGE = "statechart_change", "an accepted statechart change lacks the state it was in"
    # the Panel
    PANEL_INVENTORY = "panel_inventory", "the Panel's list of servers said so"
    PANEL_UNLISTED = "panel_unlisted", "the Panel no longer lists the server"
    PANEL_CREATE = "panel_create", "the Panel created it"
    PANEL_SYNC = "panel_sync", "the Panel asked for a sync"
    PANEL_REFUSED_ACTIVITY = "panel_refused_activity", "the Panel refused the activity entry"
    # installs
    INSTALL = "install", "an install asked for it"
    REINSTALL = "reinstall", "a reinstall asked for it"
    INSTALL_SUCCEEDED = "install_succeeded", "its install script succeeded"
    INSTALL_FAILED = "install_failed", "its install failed"
    INSTALL_INTERRUPTED = "install_interrupted", "its install was found interrupted at boot"
    # schedules
    SCHEDULE = "schedule", "a schedule of the server decided"


DOCS = Path(__file__).resolve().parent.parent / "docs" / "audit.md"
BEGIN = "<!-- generated by `python -m wingman.engine.event_types --write`: event types and causes -->"
END = "<!-- end of the generated tables -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def docs_tables() -> str:
    """The markdown of both tables, between their markers, as docs/audit.md holds it."""
    lines = [BEGIN, "", "| event type | what it records |", "| --- | --- |"]
    lines += [f"| `{t.value}` | {_cell(t.summary)} |" for t in EventType]
    lines += ["", "| cause | in the audit's words |", "| --- | --- |"]
    lines += [f"| `{c.value}` | {_cell(c.words)} |" for c in Cause]
    lines += ["", END]
    return "\n".join(lines)


def documented(text: str) -> str | None:
    """The generated part of a document (markers included), or None when it has none."""
    start, end = text.find(BEGIN), text.find(END)
    return text[start : end + len(END)] if start >= 0 and end > start else None


def write_docs(path: Path = DOCS) -> bool:
    """Put the tables in `path` (replacing the generated part). True when it changed."""
    text = path.read_text()
    old = documented(text)
    if old is None:
        raise SystemExit(f"{path}: no generated part (add the lines {BEGIN!r} and {END!r})")
    new = text.replace(old, docs_tables())
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        print("updated" if write_docs() else "unchanged", DOCS)
    else:
        print(docs_tables())
