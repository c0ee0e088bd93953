"""The schedules of every server as their events leave them: each schedule as last set, where it
came from, when it was set, the last due time it answered (fired, skipped or missed), and the
runs that began without an outcome. Folded from the log at boot, then kept by the scheduler as it
records (the scheduler is the only writer of these events)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.schedules.events import Source
from wingman.engine.schedules.model import Schedule


@dataclass
class Entry:
    server: str
    schedule: Schedule
    source: Source
    set_at: datetime
    last_due: datetime | None = None
    next_due: datetime | None = None  # the scheduler's, not folded


@dataclass
class Book:
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)  # (server, schedule id)
    open_runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # run id -> (server, schedule id)

    by_server: dict[str, dict[str, Entry]] = field(default_factory=dict)  # the same entries, per server

    def of_server(self, server: str) -> list[Entry]:
        return list(self.by_server.get(server, {}).values())

    def forget_server(self, server: str) -> None:
        for sid in self.by_server.pop(server, {}):
            del self.entries[server, sid]

    def _put(self, entry: Entry) -> None:
        sid = str(entry.schedule.id)
        self.entries[entry.server, sid] = entry
        self.by_server.setdefault(entry.server, {})[sid] = entry

    def _drop(self, server: str, sid: str) -> None:
        self.entries.pop((server, sid), None)
        mine = self.by_server.get(server, {})
        mine.pop(sid, None)
        if not mine:
            self.by_server.pop(server, None)

    def apply(self, ev: RecordedEvent) -> None:
        d, server = ev.data, ev.stream_id
        key = (server, str(d.get("schedule_id")))
        if ev.type == EventType.SCHEDULE_ADDED:
            old = self.entries.get(key)
            schedule = Schedule.model_validate(d["schedule"])
            self._put(Entry(server, schedule, d["source"], ev.recorded_at, old.last_due if old else None))
        elif ev.type == EventType.SCHEDULE_REMOVED:
            self._drop(*key)
        elif ev.type in (EventType.SCHEDULE_FIRED, EventType.SCHEDULE_SKIPPED, EventType.SCHEDULE_MISSED):
            entry = self.entries.get(key)
            due = datetime.fromisoformat(d["last_due"] if ev.type == EventType.SCHEDULE_MISSED else d["due"])
            if entry is not None:
                entry.last_due = due
                if ev.type == EventType.SCHEDULE_SKIPPED and d["condition"] == "skip_next":
                    entry.schedule = entry.schedule.model_copy(update={"skip_next": False})
            if ev.type == EventType.SCHEDULE_FIRED:
                self.open_runs[d["run_id"]] = (server, key[1])
        elif ev.type == EventType.SCHEDULE_RUN_FINISHED:
            self.open_runs.pop(d["run_id"], None)
