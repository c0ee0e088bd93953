"""The statechart file drives the machine: legal triggers move, illegal ones are refused, and a
chart that lacks a trigger the engine fires stops the daemon at start."""

import pytest
import yaml

from tests.support.daemon import TOKEN
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.statechart import (
    STATECHART_PATH,
    ChartPosition,
    IllegalTransition,
    PowerMachine,
    StatechartError,
    Trigger,
    load_statechart,
    parse_statechart,
)


def _chart_without(trigger: str):
    doc = yaml.safe_load(STATECHART_PATH.read_text())
    doc["transitions"] = [t for t in doc["transitions"] if t["trigger"] != trigger]
    return parse_statechart(yaml.safe_dump(doc))


def test_file_defines_the_states_and_initial():
    chart = load_statechart()
    assert set(chart.states) == {"offline", "starting", "running", "stopping", "installing"}
    assert chart.initial == "offline"


def test_installing_is_entered_from_offline_only_and_shown_to_a_panel_as_offline():
    chart = load_statechart()
    assert chart.destination("install", "offline") == "installing"
    assert [s for s in chart.states if chart.allows("install", s)] == ["offline"]
    assert chart.destination("installed", "installing") == "offline"
    assert [t for t in chart.triggers() if chart.allows(t, "installing")] == ["installed"]  # no power trigger
    # A Panel knows Wings' four power states: it is told `offline`, and `install started` says the rest.
    assert chart.panel_status("installing") == "offline"
    assert all(chart.panel_status(s) == s for s in chart.states if s != "installing")


def test_a_panel_status_must_name_a_state():
    doc = yaml.safe_load(STATECHART_PATH.read_text())
    doc["states"][-1]["panel_status"] = "asleep"
    with pytest.raises(StatechartError, match="panel_status names unknown state 'asleep'"):
        parse_statechart(yaml.safe_dump(doc))


@pytest.mark.parametrize("transition", load_statechart().transitions, ids=lambda t: t.trigger)
def test_every_declared_transition_fires_from_each_source(transition):
    m = PowerMachine()
    for source in transition.sources:
        position = m.model("s", source)
        assert position.may(transition.trigger)
        assert position.destination(transition.trigger) == transition.dest
        assert position.fire(transition.trigger) == transition.dest
        assert position.state == transition.dest


def test_undeclared_triggers_are_refused_and_leave_the_state():
    chart = load_statechart()
    for state in chart.states:
        position = ChartPosition(chart, state)
        for trigger in [*chart.triggers(), "teleport"]:
            legal = any(t.trigger == trigger and state in t.sources for t in chart.transitions)
            assert position.may(trigger) == legal == chart.allows(trigger, state)
            if not legal:
                with pytest.raises(IllegalTransition):
                    position.destination(trigger)
                with pytest.raises(IllegalTransition):
                    position.fire(trigger)
                assert position.state == state


def test_the_table_is_the_transitions_machine_compiled():
    """Legality has one source: the table is read from the `transitions` machine built from the
    file, and agrees with what that machine does to a model on every (trigger, state)."""
    from transitions import Machine, MachineError

    chart = load_statechart()
    assert isinstance(chart.machine, Machine) and PowerMachine(chart).machine is chart.machine
    assert chart.machine.models == []  # positions are not models of it: nothing per server in it
    for state in chart.states:
        for trigger in chart.triggers():
            model = type("Model", (), {})()
            chart.machine.add_model(model, initial=state)
            try:
                model.trigger(trigger)
                moved = model.state
            except MachineError:
                moved = None
            chart.machine.remove_model(model)
            assert chart.table.get((trigger, state)) == moved


def test_a_chart_the_table_cannot_answer_for_is_refused():
    """A `transitions` feature the compiled table would answer differently from (a condition, a
    callback) is refused when the table is compiled, not silently ignored."""
    from transitions import Machine

    from wingman.engine.statechart import compile_table

    conditional = Machine(
        model=None,
        states=["a", "b"],
        initial="a",
        auto_transitions=False,
        transitions=[{"trigger": "go", "source": "a", "dest": "b", "conditions": "ready"}],
    )
    with pytest.raises(StatechartError, match="conditions"):
        compile_table(conditional)
    entering = Machine(
        model=None,
        states=[{"name": "a"}, {"name": "b", "on_enter": "hello"}],
        initial="a",
        auto_transitions=False,
        transitions=[{"trigger": "go", "source": "a", "dest": "b"}],
    )
    with pytest.raises(StatechartError, match="enter/exit"):
        compile_table(entering)


def test_start_is_only_legal_from_offline_and_kill_paths_end_offline():
    position = PowerMachine().model("s")
    assert position.fire("start") == "starting"
    with pytest.raises(IllegalTransition):
        position.fire("start")
    assert position.fire("abort") == "offline"  # pre-boot failed or a kill before any process


def test_a_position_holds_the_state_and_nothing_per_server():
    """One position type, for live servers and replays: a chart and a state, no machine model."""
    m = PowerMachine()
    position = m.model("s")
    assert type(position) is ChartPosition and not hasattr(position, "__dict__")
    assert position.fire("start") == "starting"
    assert position.may("ready") and not position.may("start")
    with pytest.raises(IllegalTransition):
        m.model("s", "orbit")


def test_every_engine_trigger_is_in_the_file():
    assert {t.value for t in Trigger} <= set(load_statechart().triggers())


@pytest.mark.parametrize("missing", [t.value for t in Trigger])
def test_a_chart_missing_an_engine_trigger_is_refused_by_name(missing):
    with pytest.raises(StatechartError, match=rf"trigger\(s\) {missing}\b.*engine fires"):
        PowerMachine(_chart_without(missing))


def test_a_daemon_does_not_start_on_a_chart_missing_a_trigger(tmp_path):
    """The daemon refuses before it touches its database: nothing is written."""
    config = parse_config({"token": TOKEN, "system": {"root_directory": str(tmp_path / "var")}})
    with pytest.raises(StatechartError, match="ready"):
        Daemon(config, chart=_chart_without("ready"))
    assert not (tmp_path / "var" / "wingman.db").exists()


def test_a_statechart_naming_an_unknown_state_is_rejected():
    doc = yaml.safe_load(STATECHART_PATH.read_text())
    doc["transitions"].append({"trigger": "teleport", "source": "offline", "dest": "orbit"})
    with pytest.raises(ValueError, match="unknown state 'orbit'"):
        parse_statechart(yaml.safe_dump(doc))
