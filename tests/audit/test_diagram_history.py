"""History and timeline diagrams of a server driven through the real power engine (a real local
process: start, stop, start, restart, kill, a reinstall, a start that fails pre-boot) show exactly the
transitions, counts, causes and actors of its stored events, in every format and in any window."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest

from tests.support.diagrams import (
    MERMAID_UNTAKEN,
    counts_of,
    credit,
    decoded_png,
    dot_edges,
    drive_server,
    happened,
    mermaid_counts,
    stored_events,
    svg_groups,
)
from wingman.engine.audit.describe import CAUSES
from wingman.engine.diagrams.history import FADED_FILL, history_diagram
from wingman.engine.diagrams.render import parse_dot
from wingman.engine.diagrams.timeline import keep_intervals, timeline_diagram, when
from wingman.engine.diagrams.window import Window, passage
from wingman.engine.statechart import load_statechart
from wingman.engine.store.database import create_engine

CHART = load_statechart()
ALL_ARROWS = {(s, t.trigger, t.dest) for t in CHART.transitions for s in t.sources}
# What that drive does, by the statechart: a restart is a stop and a start, a kill of a running
# server is its exit, a reinstall goes through installing, a failed pre-boot aborts the start.
EXPECTED = Counter(
    {
        ("offline", "start", "starting"): 4,
        ("starting", "ready", "running"): 3,
        ("running", "stop", "stopping"): 2,
        ("stopping", "exited", "offline"): 2,
        ("running", "exited", "offline"): 1,
        ("starting", "abort", "offline"): 1,
        ("offline", "install", "installing"): 1,
        ("installing", "installed", "offline"): 1,
    }
)


@pytest.fixture(scope="module")
def driven(tmp_path_factory):
    db, uuid = drive_server(tmp_path_factory.mktemp("engine"))
    return db, uuid, stored_events(db, uuid)


async def draw(driven, kind: str, fmt: str, window: Window = Window()) -> bytes:
    db, uuid, _ = driven
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        p = await passage(engine, uuid, window, keep_intervals() if kind == "timeline" else 0)
    finally:
        await engine.dispose()
    return (history_diagram if kind == "history" else timeline_diagram)(CHART, p, fmt)


def changes(events, window: Window = Window()) -> list[dict]:
    return [e for e in events if e["type"] == "state.changed" and window.holds(e["at"])]


def test_the_drive_took_the_expected_transitions(driven):
    assert counts_of(driven[2]) == EXPECTED  # the ground truth the diagrams are checked against


async def test_history_dot_counts_every_transition_taken(driven):
    text = (await draw(driven, "history", "dot")).decode()
    edges = dot_edges(text)
    counted = Counter()
    for (source, label, dest), attrs in edges.items():
        m = re.fullmatch(r"(\w+) ×(\d+)", label)
        if m:
            counted[(source, m[1], dest)] = int(m[2])
            assert float(attrs["penwidth"]) >= 2 and attrs.get("style") != "dashed"
        else:  # not taken: dashed, no count
            assert attrs["style"] == "dashed" and (source, label, dest) in ALL_ARROWS - set(EXPECTED)
    assert counted == counts_of(driven[2])
    assert {(s, label.split(" ")[0], d) for s, label, d in edges} == ALL_ARROWS
    g = parse_dot(text)
    assert all(g.get_node(s).attr.get("fillcolor") != FADED_FILL for s in CHART.states)  # it visited them all
    offline = g.get_node("offline")  # where the server is now
    assert offline.attr["penwidth"] == "3" and "current state" in offline.attr["label"]
    assert sum("current state" in g.get_node(s).attr["label"] for s in CHART.states) == 1


async def test_history_mermaid_svg_and_png_say_the_same(driven):
    truth = counts_of(driven[2])
    mermaid = (await draw(driven, "history", "mermaid")).decode()
    assert mermaid_counts(mermaid) == truth
    assert {(s, t, d) for s, t, d in MERMAID_UNTAKEN.findall(mermaid)} == ALL_ARROWS - set(truth)
    assert (
        re.search(r"^\s*class offline current$", mermaid, re.M) and "unvisited\n" not in mermaid.split("classDef")[-1]
    )

    groups = svg_groups(await draw(driven, "history", "svg"))
    for (source, trigger, dest), n in truth.items():
        assert groups[f"t_{source}_{trigger}_{dest}"]["texts"] == [f"{trigger} ×{n}"]
    for source, trigger, dest in ALL_ARROWS - set(truth):
        assert groups[f"t_{source}_{trigger}_{dest}"]["texts"] == [trigger]
    assert "current state" in groups["state_offline"]["texts"]
    decoded_png(await draw(driven, "history", "png"))


async def test_a_window_counts_only_its_changes_and_fades_what_it_never_visited(driven):
    events = driven[2]
    failed_start = changes(events)[-2]  # the start whose pre-boot failed, then its abort
    assert failed_start["data"]["trigger"] == "start"
    window = Window(since=failed_start["at"])
    assert counts_of(changes(events, window)) == {
        ("offline", "start", "starting"): 1,
        ("starting", "abort", "offline"): 1,
    }
    text = (await draw(driven, "history", "dot", window)).decode()
    counted = {
        (s, label.split(" ×")[0], d): int(label.split(" ×")[1]) for s, label, d in dot_edges(text) if "×" in label
    }
    assert counted == counts_of(changes(events, window))
    g = parse_dot(text)
    faded = {s for s in CHART.states if g.get_node(s).attr.get("fillcolor") == FADED_FILL}
    assert faded == {"running", "stopping", "installing"}  # never visited in that window
    assert "dashed" in g.get_node("running").attr["style"]
    mermaid = (await draw(driven, "history", "mermaid", window)).decode()
    assert mermaid_counts(mermaid) == counts_of(changes(events, window))
    assert re.search(r"^\s*class running,stopping,installing unvisited$", mermaid, re.M)


async def test_a_closed_window_marks_the_state_at_its_end(driven):
    events = driven[2]
    first_ready = next(e for e in changes(events) if e["data"]["trigger"] == "ready")
    window = Window(since=changes(events)[0]["at"], until=first_ready["at"])
    text = (await draw(driven, "history", "dot", window)).decode()
    counted = {(s, label.split(" ×")[0], d) for s, label, d in dot_edges(text) if "×" in label}
    assert counted == {("offline", "start", "starting"), ("starting", "ready", "running")}
    g = parse_dot(text)
    assert "state at the window's end" in g.get_node("running").attr["label"]
    assert "current state" not in text

    before = Window(until=events[0]["at"] - timedelta(seconds=1))  # before the server existed
    empty = (await draw(driven, "history", "dot", before)).decode()
    assert not [label for _, label, _ in dot_edges(empty) if "×" in label]
    g = parse_dot(empty)  # held: a node's attributes are read through its graph
    assert all(g.get_node(s).attr.get("fillcolor") == FADED_FILL for s in CHART.states)


ARROW = re.compile(r"^\s*(\S+)->>(\S+): (\S+ \S+) (\w+): (.+?) \((?:(\w+) asked )?by (\S+)\) via (\S+)$", re.M)


async def test_timeline_mermaid_has_each_change_with_time_cause_and_actor(driven):
    events = driven[2]
    text = (await draw(driven, "timeline", "mermaid")).decode()
    assert text.split("---\n")[2].startswith("sequenceDiagram\n")
    drawn = ARROW.findall(text)
    expected = [
        (
            e["data"]["from_state"],
            e["data"]["to_state"],
            when(happened(events, e)),
            e["data"]["trigger"],
            CAUSES[e["data"]["cause"]],
            *credit(events, e),
        )
        for e in changes(events)
    ]
    assert drawn == expected
    # every change was asked for by the test (the stops' and the kill's exits, seen by the daemon, too)
    assert {actor for *_, actor, _ in drawn} == {"test"}
    assert [a[5] for a in drawn if a[3] == "exited"] == ["stop", "restart", "kill"]

    window = Window(since=changes(events)[-2]["at"])
    windowed = ARROW.findall((await draw(driven, "timeline", "mermaid", window)).decode())
    assert [(a[0], a[3], a[1]) for a in windowed] == [
        ("offline", "start", "starting"),
        ("starting", "abort", "offline"),
    ]


async def test_timeline_svg_is_one_box_per_state_interval(driven):
    events = driven[2]
    groups = svg_groups(await draw(driven, "timeline", "svg"))
    boxes = [g for gid, g in sorted(groups.items()) if gid.startswith("interval_")]
    arrows = {int(gid.split("_")[1]): g for gid, g in groups.items() if gid.startswith("change_")}
    assert len(boxes) == len(changes(events)) + 1 and len(arrows) == len(changes(events))
    for i, e in enumerate(changes(events), start=1):  # change i leads into box i
        assert groups[f"interval_{i}"]["texts"][0] == e["data"]["to_state"]
        words = " ".join(arrows[i]["texts"])
        assert when(happened(events, e)) in words and f"{e['data']['trigger']}: {CAUSES[e['data']['cause']]}" in words
        action, actor, _ = credit(events, e)
        assert (f"({action} asked by {actor})" if action else f"(by {actor})") in words
    assert groups["interval_0"]["texts"][0] == "offline"
