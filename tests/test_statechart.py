"""The statechart file drives the machine: legal triggers move, illegal ones are refused."""
import pytest
import yaml

from engine.statechart import (
    STATECHART_PATH, IllegalTransition, PowerMachine, load_statechart, parse_statechart,
)


def test_file_defines_the_four_states_and_initial():
    chart = load_statechart()
    assert set(chart.states) == {"offline", "starting", "running", "stopping"}
    assert chart.initial == "offline"


@pytest.mark.parametrize("transition", load_statechart().transitions, ids=lambda t: t.trigger)
def test_every_declared_transition_fires_from_each_source(transition):
    m = PowerMachine()
    for source in transition.sources:
        m.add("s")
        m.machine.set_state(source, model=m._models["s"])
        assert m.can_fire("s", transition.trigger)
        assert m.fire("s", transition.trigger) == transition.dest
        m.remove("s")


def test_undeclared_triggers_are_refused_and_leave_the_state():
    chart = load_statechart()
    m = PowerMachine(chart)
    m.add("s")
    for state in chart.states:
        m.machine.set_state(state, model=m._models["s"])
        for trigger in chart.triggers():
            legal = any(t.trigger == trigger and state in t.sources for t in chart.transitions)
            assert m.can_fire("s", trigger) == legal
            if not legal:
                with pytest.raises(IllegalTransition):
                    m.fire("s", trigger)
                assert m.state("s") == state


def test_start_is_only_legal_from_offline_and_kill_paths_end_offline():
    m = PowerMachine()
    m.add("s")
    assert m.fire("s", "start") == "starting"
    with pytest.raises(IllegalTransition):
        m.fire("s", "start")
    assert m.fire("s", "abort") == "offline"  # pre-boot failed or a kill before any process


def test_models_are_removed_when_servers_go():
    m = PowerMachine()
    for i in range(100):
        m.add(f"s{i}")
    for i in range(100):
        m.remove(f"s{i}")
    assert m.machine.models == []


def test_a_statechart_naming_an_unknown_state_is_rejected():
    doc = yaml.safe_load(STATECHART_PATH.read_text())
    doc["transitions"].append({"trigger": "teleport", "source": "offline", "dest": "orbit"})
    with pytest.raises(ValueError, match="unknown state 'orbit'"):
        parse_statechart(yaml.safe_dump(doc))
