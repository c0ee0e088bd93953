"""Load the power statechart, build its `transitions` machine, and answer "may this fire, and where
does it go" from that machine.

The YAML file in statecharts/ is the only place states and transitions are spelled. Everything
else (guards, diagrams, the audit's legality check) asks this module. The engine's side of the
contract is `Trigger`: the triggers it fires, by meaning. Building the machine checks that the
chart defines every one of them, so a trigger renamed in the YAML stops the daemon at start with
a clear message instead of silently no longer recording that change.

Legality is decided in one place. `transitions` builds the chart's machine (`Statechart.machine`,
one per chart, with no models); its events and transitions are compiled once into a table,
(trigger, source) -> destination (`Statechart.table`), so every question, live or replayed, is a
dict lookup derived from the very machine, not a second reading of the YAML. A transition the
table could not represent exactly (one with conditions or callbacks, or a state with enter/exit
callbacks: `transitions` features the chart does not use today) is refused when the table is
compiled, with a message saying so, rather than answered differently from the machine.

A server's position in the chart has one type, `ChartPosition`, the same for a live server (the
registry's views), a replay of the log, a snapshot and the audit. The live path asks its question
once: the journal takes the destination from the position before it appends a change
(`ChartPosition.destination`, IllegalTransition when it may not fire), and the fold moves the
position to the destination the event names after the same lookup.
"""

from __future__ import annotations

import enum
import hashlib
import json
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from transitions import Machine
from transitions import Transition as MachineTransition

STATECHART_PATH = Path(__file__).resolve().parent.parent / "statecharts" / "power.yaml"

# The trigger of the one state change no chart defines: a server re-placed into the chart in force
# because an operator accepted a chart that lacks the state it was in (engine.charts). A chart may
# not name a transition so.
CHART_CHANGE_TRIGGER = "statechart_change"


class Trigger(enum.StrEnum):
    """Every trigger the engine fires. Their names must be in power.yaml (checked at start)."""

    START = "start"  # a start was accepted: pre-boot begins
    READY = "ready"  # the process printed its done-line
    STOP = "stop"  # the configured stop was sent
    ABORT = "abort"  # pre-boot failed or was cancelled before any process ran
    EXITED = "exited"  # the process or container is gone
    INSTALL = "install"  # an install (or reinstall) began (engine.install)
    INSTALLED = "installed"  # the install ended, whatever its outcome


class StatechartError(ValueError):
    """The statechart file is not one the engine can run on; the message says why."""


class IllegalTransition(Exception):
    """A trigger that the statechart does not allow from the current state."""

    def __init__(self, trigger: str, state: str):
        super().__init__(f"transition {trigger!r} is not allowed from state {state!r}")
        self.trigger = trigger
        self.state = state


@dataclass(frozen=True)
class Transition:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    description: str


@dataclass(frozen=True)
class Statechart:
    name: str
    initial: str
    states: tuple[str, ...]
    state_descriptions: dict[str, str]
    transitions: tuple[Transition, ...]
    # What a Panel's websocket is told of a state it does not know (`panel_status` in the file).
    panel_statuses: dict[str, str] = field(default_factory=dict)
    # The file's text and the hash of its parsed content (`chart_digest`): what the log records of
    # a chart, so that comments and layout are no change and the exact text can be read back.
    text: str = field(default="", compare=False, repr=False)
    digest: str = field(default="", compare=False)
    source: str = field(default="", compare=False)  # the file it was read from (read_statechart)
    # Its place in the log's timeline of charts (engine.charts): in force from position `since`
    # on; `earlier` holds the charts in force before it, each with the position it took over at,
    # oldest first. Events before `since` are checked against the chart in force when they were
    # recorded (`in_force_at`); a chart read from a file alone has no earlier one.
    since: int = field(default=0, compare=False)
    earlier: tuple[tuple[int, Statechart], ...] = field(default=(), compare=False, repr=False)

    def destination(self, trigger: str, source: str) -> str:
        """Where `trigger` leads from `source`; IllegalTransition when it may not fire there."""
        try:
            return self.table[trigger, source]
        except KeyError:
            raise IllegalTransition(trigger, source) from None

    def allows(self, trigger: str, source: str) -> bool:
        return (trigger, source) in self.table

    @cached_property
    def machine(self) -> Machine:
        """The chart's `transitions` machine (built once per chart; it holds no models)."""
        return build_machine(self)

    @cached_property
    def table(self) -> dict[tuple[str, str], str]:
        """(trigger, source) -> destination, compiled once from `machine` (see compile_table)."""
        return compile_table(self.machine)

    def triggers(self) -> list[str]:
        return sorted({t.trigger for t in self.transitions})

    def in_force_at(self, position: int) -> Statechart:
        """The chart in force when the event at `position` was recorded (this one from `since` on)."""
        if position >= self.since:
            return self
        i = bisect_right(self._starts, position) - 1
        return self.earlier[max(i, 0)][1]

    @cached_property
    def _starts(self) -> list[int]:
        return [at for at, _ in self.earlier]

    def lineage_at(self, position: int) -> tuple[str, ...]:
        """The digests of the charts in force up to `position`, a repeat of the same chart once:
        what a fold up to there depended on (the snapshot cache keys on it)."""
        seen = [c.digest for at, c in self.earlier if at <= position]
        if position >= self.since:
            seen.append(self.digest)
        return tuple(d for i, d in enumerate(seen) if i == 0 or seen[i - 1] != d) or (self.digest,)

    def with_history(self, since: int, earlier: tuple[tuple[int, Statechart], ...]) -> Statechart:
        """This chart as the log's timeline places it: in force from `since`, after `earlier`."""
        return replace(self, since=since, earlier=earlier)

    def panel_status(self, state: str) -> str:
        """The state as a Panel's `status` frame says it (the state itself unless the file maps it)."""
        return self.panel_statuses.get(state, state)


def chart_digest(doc: Any) -> str:
    """The SHA-256 of the chart's parsed content, canonically written (keys sorted, no spacing):
    the same for two files that differ in comments, layout or quoting only."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_statechart(text: str) -> Statechart:
    doc = yaml.safe_load(text)
    states = tuple(s["name"] for s in doc["states"])
    transitions = []
    for t in doc["transitions"]:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for s in [*sources, t["dest"]]:
            if s not in states:
                raise StatechartError(f"statechart transition {t['trigger']!r} names unknown state {s!r}")
        if t["trigger"] == CHART_CHANGE_TRIGGER:
            raise StatechartError(f"statechart trigger {CHART_CHANGE_TRIGGER!r} is reserved (engine.charts)")
        transitions.append(Transition(t["trigger"], tuple(sources), t["dest"], t.get("description", "")))
    for s in doc["states"]:
        if s.get("panel_status") and s["panel_status"] not in states:
            raise StatechartError(
                f"statechart state {s['name']!r}: panel_status names unknown state {s['panel_status']!r}"
            )
    if doc["initial"] not in states:
        raise StatechartError(f"statechart initial state {doc['initial']!r} is not a state")
    return Statechart(
        name=doc.get("name", "power"),
        initial=doc["initial"],
        states=states,
        state_descriptions={s["name"]: s.get("description", "") for s in doc["states"]},
        transitions=tuple(transitions),
        panel_statuses={s["name"]: s["panel_status"] for s in doc["states"] if s.get("panel_status")},
        text=text,
        digest=chart_digest(doc),
    )


@lru_cache(maxsize=1)
def load_statechart(path: str | None = None) -> Statechart:
    return parse_statechart(Path(path or STATECHART_PATH).read_text())


def read_statechart(path: Path | str | None = None) -> Statechart:
    """A chart file the engine can run on, read afresh (not the cached packaged one); a file that
    cannot be read, is not a chart, or lacks a trigger the engine fires: StatechartError saying so."""
    where = Path(path or STATECHART_PATH)
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise StatechartError(f"cannot read the statechart {where}: {exc.strerror or exc}") from None
    try:
        chart = parse_statechart(text)
    except StatechartError as exc:
        raise StatechartError(f"{where} is not a valid statechart: {exc}") from None
    except (yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise StatechartError(f"{where} is not a valid statechart: {what}") from None
    chart = replace(chart, source=str(where))
    check_vocabulary(chart, where)
    _ = chart.table  # a chart the table cannot represent is refused here too
    return chart


def check_vocabulary(chart: Statechart, path: Path = STATECHART_PATH) -> None:
    """Fail when the chart lacks a trigger the engine fires (see `Trigger`)."""
    missing = sorted(t.value for t in Trigger if t.value not in chart.triggers())
    if missing:
        raise StatechartError(
            f"the statechart {chart.name!r} has no transition for the trigger(s) {', '.join(missing)}, "
            f"which the engine fires (engine/statechart.py Trigger); it defines {', '.join(chart.triggers())}. "
            f"Restore them in {path} or change the engine with it."
        )


def build_machine(chart: Statechart) -> Machine:
    """The `transitions` machine of the chart: its states and transitions, no model."""
    return Machine(
        model=None,
        states=list(chart.states),
        transitions=[{"trigger": t.trigger, "source": list(t.sources), "dest": t.dest} for t in chart.transitions],
        initial=chart.initial,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=False,
    )


def compile_table(machine: Machine) -> dict[tuple[str, str], str]:
    """The machine's transitions as (trigger, source) -> destination: the first transition the
    machine would take for the trigger from the source (the one it always takes, as none has
    conditions). Refuses (StatechartError) a machine the table would answer differently from:
    conditions, callbacks, internal transitions."""
    machine_callbacks = [
        machine.prepare_event,
        machine.before_state_change,
        machine.after_state_change,
        machine.finalize_event,
        machine.on_exception,
    ]
    if any(machine_callbacks):
        raise StatechartError(
            "the power machine has machine-level callbacks; positions are moved by a table "
            "compiled from its transitions, which cannot run them (engine/statechart.py)"
        )
    for state in machine.states.values():
        if state.on_enter or state.on_exit:
            raise StatechartError(
                f"state {state.name!r} has enter/exit callbacks; positions are moved by a "
                f"table compiled from the machine's transitions, which cannot run them"
            )
    table: dict[tuple[str, str], str] = {}
    for trigger, event in machine.events.items():
        for source, candidates in event.transitions.items():
            destinations = [_plain_destination(trigger, source, t) for t in candidates]
            table[trigger, source] = destinations[0]
    return table


def _plain_destination(trigger: str, source: str, transition: MachineTransition) -> str:
    """The transition's destination; StatechartError when the table could not stand for it."""
    if transition.conditions or transition.prepare or transition.before or transition.after or transition.dest is None:
        raise StatechartError(
            f"transition {trigger!r} from {source!r} has conditions, callbacks or no destination; "
            f"positions are moved by a table compiled from the machine's transitions, which "
            f"cannot evaluate them (engine/statechart.py compile_table)"
        )
    return transition.dest


class ChartPosition:
    """A server's position in the chart: the one type, for live servers and replays alike. Its
    answers come from the chart's compiled table (a dict lookup: cheap enough to fold millions of
    events), and it holds nothing but the chart and the state."""

    __slots__ = ("chart", "state")

    def __init__(self, chart: Statechart, state: str | None = None):
        self.chart = chart
        self.state = state or chart.initial

    def destination(self, trigger: str) -> str:
        """Where `trigger` leads from here; IllegalTransition when it may not fire now."""
        try:
            return self.chart.table[trigger, self.state]
        except KeyError:
            raise IllegalTransition(trigger, self.state) from None

    def may(self, trigger: str) -> bool:
        return (trigger, self.state) in self.chart.table

    def fire(self, trigger: str) -> str:
        self.state = self.destination(trigger)
        return self.state


class PowerMachine:
    """The chart's `transitions` machine, as the registry holds it: it refuses a chart without
    every trigger the engine fires (StatechartError) and hands out positions."""

    def __init__(self, chart: Statechart | None = None):
        self.chart = chart or load_statechart()
        check_vocabulary(self.chart)
        self.machine = self.chart.machine
        _ = self.chart.table  # compiled now: a chart the table cannot represent stops the daemon at start

    def model(self, uuid: str, state: str | None = None) -> ChartPosition:
        """A server's position, at `state` (the initial state when None)."""
        if state is not None and state not in self.chart.states:
            raise IllegalTransition("(restore)", state)
        return ChartPosition(self.chart, state)
