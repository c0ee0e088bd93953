"""The statechart file drives the machine: legal triggers move, illegal ones are refused, and a
chart that lacks a trigger the engine fires stops the daemon at start."""
import pytest
import yaml

from engine.config import parse_config
from engine.daemon import Daemon
from engine.statechart import (
    STATECHART_PATH, ChartPosition, IllegalTransition, PowerMachine, StatechartError, Trigger, load_statechart,
    parse_statechart,
)
from tests.support import TOKEN


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
        model = m.model("s", source)
        assert model.may(transition.trigger)
        assert model.fire(transition.trigger) == transition.dest
        assert model.state == transition.dest
        m.discard(model)


def test_undeclared_triggers_are_refused_and_leave_the_state():
    chart = load_statechart()
    m = PowerMachine(chart)
    for state in chart.states:
        model = m.model("s", state)
        replay = ChartPosition(chart, state)
        for trigger in [*chart.triggers(), "teleport"]:
            legal = any(t.trigger == trigger and state in t.sources for t in chart.transitions)
            assert model.may(trigger) == legal == replay.may(trigger)
            if not legal:
                for holder in (model, replay):
                    with pytest.raises(IllegalTransition):
                        holder.fire(trigger)
                    assert holder.state == state
        m.discard(model)


def test_live_models_and_replay_positions_move_alike():
    """The two holders of a position (a machine model, a chart position) agree on every path."""
    chart = load_statechart()
    m = PowerMachine(chart)
    model, replay = m.model("s"), ChartPosition(chart)
    for trigger in ["start", "abort", "start", "ready", "stop", "exited", "start", "exited"]:
        assert model.fire(trigger) == replay.fire(trigger)


def test_start_is_only_legal_from_offline_and_kill_paths_end_offline():
    model = PowerMachine().model("s")
    assert model.fire("start") == "starting"
    with pytest.raises(IllegalTransition):
        model.fire("start")
    assert model.fire("abort") == "offline"  # pre-boot failed or a kill before any process


def test_models_are_removed_when_servers_go():
    m = PowerMachine()
    models = [m.model(f"s{i}") for i in range(100)]
    assert m.model_count == 0  # none yet: made when the engine first asks
    assert all(model.may("start") for model in models)
    assert m.model_count == 100
    for model in models:
        m.discard(model)
    assert m.model_count == 0


def test_the_machine_model_guards_from_the_first_question_on():
    """A position moved by the fold alone carries no machine model; the first `may` makes one at
    the position reached, and from then on the transitions model holds and moves the state."""
    m = PowerMachine()
    power = m.model("s")
    assert power.fire("start") == "starting" and not power.materialized
    assert power.may("ready") and not power.may("start")
    assert power.materialized and power.model().state == "starting"
    assert power.fire("ready") == "running" == power.model().state
    with pytest.raises(IllegalTransition):
        power.fire("start")
    m.discard(power)
    assert m.model_count == 0


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
