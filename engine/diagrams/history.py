"""The history diagram: the statechart with what one server really did in a window drawn over it.

Transitions it took are drawn heavier and labelled with how many times; those it did not take
are dashed and pale; states it never visited are faded; the state it was in at the window's end
is marked. A transition the log holds but the statechart no longer has (the chart changed since)
is drawn in red rather than dropped: the diagram shows the log, the chart is only its backdrop.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from wingman.engine.diagrams import mermaid as mm
from wingman.engine.diagrams.formats import DOT, HISTORY_FORMATS, MERMAID, PNG, SVG
from wingman.engine.diagrams.render import draw
from wingman.engine.diagrams.statechart import INITIAL_NODE, arrows, chart_graph, edge_key, state_label
from wingman.engine.diagrams.window import Passage
from wingman.engine.statechart import Statechart

if TYPE_CHECKING:  # Graphviz is loaded when a diagram is drawn, not with the daemon (~10 MB)
    import pygraphviz

TAKEN, UNTAKEN, FADED_FILL, FADED_LINE, FADED_TEXT = "#1f3b66", "#c3c9d2", "#f7f8fa", "#d3d7dd", "#a3aab4"
CURRENT, OFF_CHART = "#d9822b", "#c0392b"


def times(n: int) -> str:
    return f"×{n}"


def title(p: Passage) -> str:
    taken = f"{p.changes} transition{'s' if p.changes != 1 else ''}"
    return f"Server {p.server}: {taken} {p.window.describe()}" + (" (deleted)" if p.deleted else "")


def current_words(p: Passage) -> str:
    if p.final_state is None:
        return ""
    return "current state" if p.window.until is None else "state at the window's end"


def _off_chart(chart: Statechart, p: Passage) -> list[tuple[str, str, str]]:
    drawn = {(s, t, d) for s, t, d, _ in arrows(chart)}
    return sorted(k for k in p.counts if k not in drawn)


def history_graph(chart: Statechart, p: Passage) -> pygraphviz.AGraph:
    g = chart_graph(chart)
    g.graph_attr["label"] = title(p)
    strangers = sorted({s for k in _off_chart(chart, p) for s in (k[0], k[2])} - set(chart.states))
    for name in list(chart.states) + strangers:
        if not g.has_node(name):
            g.add_node(
                name,
                shape="box",
                style="rounded,filled",
                color=OFF_CHART,
                fillcolor="#fdecea",
                label=state_label(name, "not a state of the statechart now"),
            )
        node = g.get_node(name)
        if name == p.final_state:
            node.attr.update(
                color=CURRENT,
                penwidth="3",
                fillcolor="#fdf1e4",
                label=state_label(name, chart.state_descriptions.get(name, ""), current_words(p)),
            )
        elif name not in p.visited:
            node.attr.update(
                style="rounded,filled,dashed", fillcolor=FADED_FILL, color=FADED_LINE, fontcolor=FADED_TEXT
            )
    for source, trigger, dest, _ in arrows(chart):
        edge = g.get_edge(source, dest, key=edge_key(source, trigger, dest))
        n = p.counts.get((source, trigger, dest), 0)
        if n:
            edge.attr.update(
                label=f" {trigger} {times(n)} ",
                color=TAKEN,
                fontcolor=TAKEN,
                penwidth=f"{min(6.0, 2.0 + math.log2(n)):.2f}",
                fontname="Helvetica-Bold",
            )
        else:
            edge.attr.update(color=UNTAKEN, fontcolor=FADED_TEXT, style="dashed")
    for source, trigger, dest in _off_chart(chart, p):
        n = p.counts[(source, trigger, dest)]
        g.add_edge(
            source,
            dest,
            key=edge_key(source, trigger, dest),
            id=f"t_{source}_{trigger}_{dest}",
            label=f" {trigger} {times(n)} (not in the statechart now) ",
            color=OFF_CHART,
            fontcolor=OFF_CHART,
            penwidth="2",
        )
    if chart.initial not in p.visited:
        g.get_edge(INITIAL_NODE, chart.initial, key="initial").attr.update(color=UNTAKEN)
    return g


def history_mermaid(chart: Statechart, p: Passage) -> str:
    """A Mermaid flowchart (state diagrams cannot style one arrow): taken transitions are thick
    arrows labelled with their count, the others dotted; classes fade and mark the states."""
    lines = [
        "---",
        f"title: {json.dumps(title(p), ensure_ascii=False)}",
        "---",
        "flowchart TB",
        "    %% Drawn from the server's events over its statechart: thick arrows were taken (×count), "
        "dotted ones were not.",
        "    __initial__(( )) --> " + mm.ident(chart.initial),
    ]
    off = _off_chart(chart, p)
    states = list(chart.states) + sorted({s for k in off for s in (k[0], k[2])} - set(chart.states))
    for name in states:
        words = current_words(p) if name == p.final_state else ""
        extra = f"<br/><i>{mm.text(words)}</i>" if words else ""
        description = chart.state_descriptions.get(name, "not a state of the statechart now")
        lines.append(f'    {mm.ident(name)}["<b>{mm.text(name)}</b><br/><small>{mm.text(description)}</small>{extra}"]')
    for source, trigger, dest in [(s, t, d) for s, t, d, _ in arrows(chart)] + off:
        n = p.counts.get((source, trigger, dest), 0)
        label = mm.text(f"{trigger} {times(n)}" if n else trigger)
        if (source, trigger, dest) in off:
            label = mm.text(f"{trigger} {times(n)} (not in the statechart now)")
        arrow = "==>" if n else "-.->"
        lines.append(f'    {mm.ident(source)} {arrow}|"{label}"| {mm.ident(dest)}')
    lines += [
        f"    classDef unvisited fill:{FADED_FILL},stroke:{FADED_LINE},color:{FADED_TEXT},stroke-dasharray:4 3",
        f"    classDef current fill:#fdf1e4,stroke:{CURRENT},stroke-width:3px",
        f"    classDef offchart fill:#fdecea,stroke:{OFF_CHART}",
    ]
    unvisited = [mm.ident(s) for s in chart.states if s not in p.visited and s != p.final_state]
    if unvisited:
        lines.append(f"    class {','.join(unvisited)} unvisited")
    if p.final_state is not None:
        lines.append(f"    class {mm.ident(p.final_state)} current")
    strangers = [mm.ident(s) for s in states if s not in chart.states and s != p.final_state]
    if strangers:
        lines.append(f"    class {','.join(strangers)} offchart")
    return "\n".join(lines) + "\n"


def history_diagram(chart: Statechart, p: Passage, fmt: str) -> bytes:
    """The history diagram in one of HISTORY_FORMATS."""
    if fmt == MERMAID:
        return history_mermaid(chart, p).encode()
    if fmt in (DOT, SVG, PNG):
        return draw(history_graph(chart, p), fmt)
    raise ValueError(f"a history diagram is drawn as {', '.join(HISTORY_FORMATS)}, not {fmt!r}")
