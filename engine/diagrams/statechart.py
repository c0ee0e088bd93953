"""The statechart exported for people and tools: Mermaid, Graphviz (DOT, SVG, PNG), SCXML and a
Markdown page for runbooks. Everything comes from the parsed statechart file; nothing here names
a state.
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from wingman.engine.diagrams import mermaid as mm
from wingman.engine.diagrams.formats import DOT, MARKDOWN, MERMAID, PNG, SCXML, STATECHART_FORMATS, SVG
from wingman.engine.diagrams.render import draw, html_text, new_graph
from wingman.engine.statechart import Statechart

if TYPE_CHECKING:  # Graphviz is loaded when a diagram is drawn, not with the daemon (~10 MB)
    import pygraphviz

SCXML_NS = "http://www.w3.org/2005/07/scxml"
# SCXML has no element for prose; attributes from another namespace are allowed on every element.
DOC_NS = "urn:wingman:statechart"
INITIAL_NODE = "__initial__"
NOTICE = "Exported from the statechart YAML by `wingman diagram refresh`: edit the YAML, not this file."


def edge_key(source: str, trigger: str, dest: str) -> str:
    """One drawn arrow: a transition from one of its sources."""
    return f"{source}|{trigger}|{dest}"


def arrows(chart: Statechart) -> list[tuple[str, str, str, str]]:
    """(source, trigger, dest, description) for every source of every transition, in file order."""
    return [(s, t.trigger, t.dest, t.description) for t in chart.transitions for s in t.sources]


def _wrapped(text: str, width: int = 38) -> str:
    return "<BR/>".join(html_text(line) for line in textwrap.wrap(text, width)) or " "


def state_label(name: str, description: str, extra: str = "") -> str:
    """An HTML-like Graphviz label: the name in bold, the description small beneath it."""
    more = f'<BR/><FONT POINT-SIZE="10"><I>{html_text(extra)}</I></FONT>' if extra else ""
    return f'<<B>{html_text(name)}</B><BR/><FONT POINT-SIZE="10">{_wrapped(description)}</FONT>{more}>'


def chart_graph(chart: Statechart) -> pygraphviz.AGraph:
    """The statechart as a Graphviz graph: a rounded box per state with its description, an arrow
    per transition and source labelled with its trigger, and a dot pointing at the initial state."""
    g = new_graph(chart.name, label=f"{chart.name} statechart", labelloc="t", rankdir="TB", nodesep="0.6")
    g.add_node(
        INITIAL_NODE, shape="point", width="0.18", label="", id="initial", tooltip=f"initial state: {chart.initial}"
    )
    for name in chart.states:
        g.add_node(
            name,
            id=f"state_{name}",
            shape="box",
            style="rounded,filled",
            fillcolor="#eef3fb",
            color="#4a6fa5",
            label=state_label(name, chart.state_descriptions.get(name, "")),
            tooltip=chart.state_descriptions.get(name, "") or name,
        )
    g.add_edge(INITIAL_NODE, chart.initial, key="initial", id="initial_arrow")
    for source, trigger, dest, description in arrows(chart):
        g.add_edge(
            source,
            dest,
            key=edge_key(source, trigger, dest),
            id=f"t_{source}_{trigger}_{dest}",
            label=f" {trigger} ",
            tooltip=f"{trigger}: {description}" if description else trigger,
            color="#4a6fa5",
        )
    return g


def to_mermaid(chart: Statechart) -> str:
    lines = ["stateDiagram-v2", f"    %% {NOTICE}", f"    [*] --> {mm.ident(chart.initial)}"]
    for name in chart.states:
        sid = mm.ident(name)
        if sid != name:
            lines.append(f'    state "{mm.text(name)}" as {sid}')
        if chart.state_descriptions.get(name):
            lines.append(f"    {sid} : {mm.text(chart.state_descriptions[name], colon=True)}")
    for source, trigger, dest, _ in arrows(chart):
        lines.append(f"    {mm.ident(source)} --> {mm.ident(dest)} : {mm.text(trigger, colon=True)}")
    return "\n".join(lines) + "\n"


def to_scxml(chart: Statechart) -> str:
    ET.register_namespace("", SCXML_NS)
    ET.register_namespace("wingman", DOC_NS)
    root = ET.Element(f"{{{SCXML_NS}}}scxml", {"version": "1.0", "name": chart.name, "initial": chart.initial})
    root.append(ET.Comment(f" {NOTICE} "))
    for name in chart.states:
        state = ET.SubElement(root, f"{{{SCXML_NS}}}state", {"id": name})
        if chart.state_descriptions.get(name):
            state.set(f"{{{DOC_NS}}}description", chart.state_descriptions[name])
        for source, trigger, dest, description in arrows(chart):
            if source == name:
                attrs = {"event": trigger, "target": dest}
                if description:
                    attrs[f"{{{DOC_NS}}}description"] = description
                ET.SubElement(state, f"{{{SCXML_NS}}}transition", attrs)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(chart: Statechart) -> str:
    """A page for a runbook or a review: the diagram (Mermaid renders in most Markdown viewers),
    then every state and every transition in words."""
    out = [
        f"# The `{chart.name}` statechart",
        "",
        f"<!-- {NOTICE} -->",
        "",
        f"Initial state: **{chart.initial}**.",
        "",
        "```mermaid",
        to_mermaid(chart).rstrip("\n"),
        "```",
        "",
        "## States",
        "",
        "| state | description |",
        "| --- | --- |",
    ]
    for name in chart.states:
        mark = " (initial)" if name == chart.initial else ""
        out.append(f"| **{_cell(name)}**{mark} | {_cell(chart.state_descriptions.get(name, ''))} |")
    out += ["", "## Transitions", "", "| trigger | from | to | description |", "| --- | --- | --- | --- |"]
    for t in chart.transitions:
        out.append(
            f"| `{_cell(t.trigger)}` | {', '.join(map(_cell, t.sources))} | {_cell(t.dest)} | {_cell(t.description)} |"
        )
    return "\n".join(out) + "\n"


def export(chart: Statechart, fmt: str) -> bytes:
    """The statechart in one of STATECHART_FORMATS."""
    if fmt == MERMAID:
        return to_mermaid(chart).encode()
    if fmt == SCXML:
        return to_scxml(chart).encode()
    if fmt == MARKDOWN:
        return to_markdown(chart).encode()
    if fmt in (DOT, SVG, PNG):
        return draw(chart_graph(chart), fmt, notice=NOTICE)
    raise ValueError(f"a statechart is exported as {', '.join(STATECHART_FORMATS)}, not {fmt!r}")
