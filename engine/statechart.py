"""Load the power statechart and build the one shared `transitions` machine from it.

The YAML file in statecharts/ is the only place states and transitions are spelled. Everything
else (guards, diagrams, the audit's legality check) asks this module. The engine's side of the
contract is `Trigger`: the triggers it fires, by meaning. Building the machine checks that the
chart defines every one of them, so a trigger renamed in the YAML stops the daemon at start with
a clear message instead of silently no longer recording that change.

A server's position in the chart has one holder: a `PowerModel` (a `transitions` model on the
shared machine) for live servers, a `ChartPosition` (the same chart, without the machine's
per-model bookkeeping) for replays of the log. Both refuse an illegal trigger the same way.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from transitions import Machine, MachineError

STATECHART_PATH = Path(__file__).resolve().parent.parent / "statecharts" / "power.yaml"


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
    state_descriptions: dict
    transitions: tuple[Transition, ...]
    # What a Panel's websocket is told of a state it does not know (`panel_status` in the file).
    panel_statuses: dict = field(default_factory=dict)

    def destination(self, trigger: str, source: str) -> str:
        """Where `trigger` leads from `source`; IllegalTransition when it may not fire there."""
        for t in self.transitions:
            if t.trigger == trigger and source in t.sources:
                return t.dest
        raise IllegalTransition(trigger, source)

    def allows(self, trigger: str, source: str) -> bool:
        return any(t.trigger == trigger and source in t.sources for t in self.transitions)

    def triggers(self) -> list[str]:
        return sorted({t.trigger for t in self.transitions})

    def panel_status(self, state: str) -> str:
        """The state as a Panel's `status` frame says it (the state itself unless the file maps it)."""
        return self.panel_statuses.get(state, state)


def parse_statechart(text: str) -> Statechart:
    doc = yaml.safe_load(text)
    states = tuple(s["name"] for s in doc["states"])
    transitions = []
    for t in doc["transitions"]:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for s in [*sources, t["dest"]]:
            if s not in states:
                raise StatechartError(f"statechart transition {t['trigger']!r} names unknown state {s!r}")
        transitions.append(Transition(t["trigger"], tuple(sources), t["dest"], t.get("description", "")))
    for s in doc["states"]:
        if s.get("panel_status") and s["panel_status"] not in states:
            raise StatechartError(f"statechart state {s['name']!r}: panel_status names unknown state {s['panel_status']!r}")
    if doc["initial"] not in states:
        raise StatechartError(f"statechart initial state {doc['initial']!r} is not a state")
    return Statechart(
        name=doc.get("name", "power"),
        initial=doc["initial"],
        states=states,
        state_descriptions={s["name"]: s.get("description", "") for s in doc["states"]},
        transitions=tuple(transitions),
        panel_statuses={s["name"]: s["panel_status"] for s in doc["states"] if s.get("panel_status")},
    )


@lru_cache(maxsize=1)
def load_statechart(path: str | None = None) -> Statechart:
    return parse_statechart(Path(path or STATECHART_PATH).read_text())


def check_vocabulary(chart: Statechart) -> None:
    """Fail when the chart lacks a trigger the engine fires (see `Trigger`)."""
    missing = sorted(t.value for t in Trigger if t.value not in chart.triggers())
    if missing:
        raise StatechartError(
            f"the statechart {chart.name!r} has no transition for the trigger(s) {', '.join(missing)}, "
            f"which the engine fires (engine/statechart.py Trigger); it defines {', '.join(chart.triggers())}. "
            f"Restore them in {STATECHART_PATH.name} or change the engine with it.")


class ChartPosition:
    """A server's position in the chart, moved by the chart alone: what a replay of the log uses
    (cheap enough to fold millions of events, and bound to no machine)."""

    __slots__ = ("chart", "state")

    def __init__(self, chart: Statechart, state: str | None = None):
        self.chart = chart
        self.state = state or chart.initial

    def may(self, trigger: str) -> bool:
        return self.chart.allows(trigger, self.state)

    def fire(self, trigger: str) -> str:
        self.state = self.chart.destination(trigger, self.state)
        return self.state


class PowerModel:
    """A live server's position in the chart: a `transitions` model of the shared machine, which
    is the runtime guard. `state`, `trigger` and `may_trigger` are added by the machine."""

    def __init__(self, uuid: str, chart: Statechart):
        self.uuid = uuid
        self.chart = chart

    def may(self, trigger: str) -> bool:
        return trigger in self.chart.triggers() and self.may_trigger(trigger)

    def fire(self, trigger: str) -> str:
        try:
            self.trigger(trigger)
        except (MachineError, AttributeError) as exc:
            raise IllegalTransition(trigger, self.state) from exc
        return self.state


class LivePower:
    """A live server's position, with its `transitions` model made on first need.

    The model (about 4 KB each, with the methods the machine binds to it) is the runtime guard:
    it is made the first time the engine asks whether a trigger may fire (`may`), and from then
    on holds the state and moves it. Until then the position is moved by the chart, after the
    same check the fold has already made: a node of 10,000 servers booting from its log, most of
    them untouched this run, carries no machine models for them."""

    __slots__ = ("_machine", "uuid", "_state", "_model")

    def __init__(self, machine: "PowerMachine", uuid: str, state: str):
        self._machine, self.uuid, self._state, self._model = machine, uuid, state, None

    @property
    def state(self) -> str:
        return self._model.state if self._model is not None else self._state

    @property
    def materialized(self) -> bool:
        return self._model is not None

    def model(self) -> PowerModel:
        if self._model is None:
            self._model = self._machine.attach(self.uuid, self._state)
        return self._model

    def may(self, trigger: str) -> bool:
        return self.model().may(trigger)

    def fire(self, trigger: str) -> str:
        if self._model is not None:
            return self._model.fire(trigger)
        self._state = self._machine.chart.destination(trigger, self._state)
        return self._state


class _Models(list):
    """The machine's model list with constant-time membership: `Machine.add_model` checks
    `model not in self.models`, which on a plain list makes registering N servers O(N^2)."""

    def __init__(self):
        super().__init__()
        self._ids: set[int] = set()

    def __contains__(self, model) -> bool:
        return id(model) in self._ids

    def append(self, model) -> None:
        self._ids.add(id(model))
        super().append(model)

    def remove(self, model) -> None:
        super().remove(model)
        self._ids.discard(id(model))


class PowerMachine:
    """One shared `transitions` machine built from the chart; each live server is a model of it.

    Refuses a chart without every trigger the engine fires (StatechartError)."""

    def __init__(self, chart: Statechart | None = None):
        self.chart = chart or load_statechart()
        check_vocabulary(self.chart)
        self._machine = Machine(
            model=None,
            states=list(self.chart.states),
            transitions=[
                {"trigger": t.trigger, "source": list(t.sources), "dest": t.dest}
                for t in self.chart.transitions
            ],
            initial=self.chart.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
        )
        self._machine.models = _Models()

    def model(self, uuid: str, state: str | None = None) -> LivePower:
        """A live position for a server, at `state` (the initial state when None); its machine
        model is added on first need (see LivePower)."""
        if state is not None and state not in self.chart.states:
            raise IllegalTransition("(restore)", state)
        return LivePower(self, uuid, state or self.chart.initial)

    def attach(self, uuid: str, state: str) -> PowerModel:
        model = PowerModel(uuid, self.chart)
        self._machine.add_model(model, initial=state)
        return model

    def discard(self, power: LivePower) -> None:
        if power.materialized:
            self._machine.remove_model(power.model())

    @property
    def model_count(self) -> int:
        return len(self._machine.models)
