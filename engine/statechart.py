"""Load the power statechart and build the one shared `transitions` machine from it.

The YAML file in statecharts/ is the only place states and transitions are spelled. Everything
else (guards, diagrams, the audit's legality check) asks this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from transitions import Machine, MachineError

STATECHART_PATH = Path(__file__).resolve().parent.parent / "statecharts" / "power.yaml"


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

    def destination(self, trigger: str, source: str) -> str:
        """Where `trigger` leads from `source`; IllegalTransition when it may not fire there."""
        for t in self.transitions:
            if t.trigger == trigger and source in t.sources:
                return t.dest
        raise IllegalTransition(trigger, source)

    def triggers(self) -> list[str]:
        return sorted({t.trigger for t in self.transitions})


def parse_statechart(text: str) -> Statechart:
    doc = yaml.safe_load(text)
    states = tuple(s["name"] for s in doc["states"])
    transitions = []
    for t in doc["transitions"]:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for s in [*sources, t["dest"]]:
            if s not in states:
                raise ValueError(f"statechart transition {t['trigger']!r} names unknown state {s!r}")
        transitions.append(Transition(t["trigger"], tuple(sources), t["dest"], t.get("description", "")))
    if doc["initial"] not in states:
        raise ValueError(f"statechart initial state {doc['initial']!r} is not a state")
    return Statechart(
        name=doc.get("name", "power"),
        initial=doc["initial"],
        states=states,
        state_descriptions={s["name"]: s.get("description", "") for s in doc["states"]},
        transitions=tuple(transitions),
    )


@lru_cache(maxsize=1)
def load_statechart(path: str | None = None) -> Statechart:
    return parse_statechart(Path(path or STATECHART_PATH).read_text())


class PowerModel:
    """One server's position in the statechart. Kept lean: the machine decorates it with triggers."""

    def __init__(self, uuid: str):
        self.uuid = uuid


class PowerMachine:
    """One shared `transitions` machine; each server is a model added to it.

    The machine is the runtime guard: `fire` refuses a trigger the statechart does not allow.
    Callers check `can_fire` before they store a state change, and fire only after it is durable.
    """

    def __init__(self, chart: Statechart | None = None):
        self.chart = chart or load_statechart()
        self.machine = Machine(
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
        self._models: dict[str, PowerModel] = {}

    def add(self, uuid: str) -> PowerModel:
        model = PowerModel(uuid)
        self.machine.add_model(model, initial=self.chart.initial)
        self._models[uuid] = model
        return model

    def remove(self, uuid: str) -> None:
        model = self._models.pop(uuid, None)
        if model is not None:
            self.machine.remove_model(model)

    def state(self, uuid: str) -> str:
        return self._models[uuid].state

    def can_fire(self, uuid: str, trigger: str) -> bool:
        model = self._models[uuid]
        return trigger in self.chart.triggers() and model.may_trigger(trigger)

    def fire(self, uuid: str, trigger: str) -> str:
        model = self._models[uuid]
        try:
            model.trigger(trigger)
        except (MachineError, AttributeError) as exc:
            raise IllegalTransition(trigger, model.state) from exc
        return model.state
