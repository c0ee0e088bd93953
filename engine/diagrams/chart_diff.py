"""Two statecharts drawn as one, with what changed marked: the chart under review against the one
in force (`wingman diagram statechart --diff OLD NEW`).

States and arrows (a transition from one of its sources) are matched by name: a state renamed is
one state removed and one added. Added ones are drawn green, removed ones red and dashed, the rest
as the statechart is drawn; a Mermaid diagram marks states with classes and arrows with + and −.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wingman.engine.diagrams import mermaid as mm
from wingman.engine.diagrams.formats import DOT, MERMAID, PNG, SVG
from wingman.engine.diagrams.render import draw, new_graph
from wingman.engine.diagrams.statechart import INITIAL_NODE, arrows, edge_key, state_label
from wingman.engine.statechart import Statechart

if TYPE_CHECKING:
    import pygraphviz

DIFF_FORMATS = (SVG, PNG, DOT, MERMAID)
ADDED, REMOVED, KEPT = "added", "removed", "kept"
COLOURS = {ADDED: ("#1a7f37", "#dafbe1"), REMOVED: ("#cf222e", "#ffebe9"), KEPT: ("#4a6fa5", "#eef3fb")}
Arrow = tuple[str, str, str]  # (source, trigger, dest)


@dataclass(frozen=True)
class ChartDiff:
    old: Statechart
    new: Statechart

    @property
    def states(self) -> dict[str, str]:
        """Every state of either chart: added, removed or kept, in the new chart's order then the old's."""
        out = {name: (KEPT if name in self.old.states else ADDED) for name in self.new.states}
        out.update({name: REMOVED for name in self.old.states if name not in self.new.states})
        return out

    @property
    def arrows(self) -> dict[Arrow, str]:
        old = {(s, t, d): desc for s, t, d, desc in arrows(self.old)}
        new = {(s, t, d): desc for s, t, d, desc in arrows(self.new)}
        out = {arrow: (KEPT if arrow in old else ADDED) for arrow in new}
        out.update({arrow: REMOVED for arrow in old if arrow not in new})
        return out

    def counts(self) -> dict[str, int]:
        """How many states and arrows were added and removed, and whether the initial state moved."""
        states, arrows_ = self.states, self.arrows
        return {
            "states added": sum(k == ADDED for k in states.values()),
            "states removed": sum(k == REMOVED for k in states.values()),
            "transitions added": sum(k == ADDED for k in arrows_.values()),
            "transitions removed": sum(k == REMOVED for k in arrows_.values()),
            "initial state changed": int(self.old.initial != self.new.initial),
        }

    def summary(self) -> str:
        said = [f"{n} {what}" for what, n in self.counts().items() if n]
        return ", ".join(said) if said else "no change"


def diff_graph(d: ChartDiff) -> pygraphviz.AGraph:
    g = new_graph(
        "diff", label=f"{d.old.name} statechart: what the change does", labelloc="t", rankdir="TB", nodesep="0.6"
    )
    g.add_node(INITIAL_NODE, shape="point", width="0.18", label="", id="initial")
    for name, kind in d.states.items():
        line, fill = COLOURS[kind]
        description = (d.new if kind != REMOVED else d.old).state_descriptions.get(name, "")
        g.add_node(
            name,
            id=f"state_{name}",
            shape="box",
            style="rounded,filled" + (",dashed" if kind == REMOVED else ""),
            fillcolor=fill,
            color=line,
            penwidth="2" if kind != KEPT else "1",
            label=state_label(name, description, "" if kind == KEPT else kind),
            **{"class": kind},
        )
    g.add_edge(INITIAL_NODE, d.new.initial, key="initial", id="initial_arrow")
    if d.old.initial != d.new.initial:
        line, _ = COLOURS[REMOVED]
        g.add_edge(INITIAL_NODE, d.old.initial, key="initial_old", color=line, style="dashed")
    for (source, trigger, dest), kind in d.arrows.items():
        line, _ = COLOURS[kind]
        mark = {ADDED: "+ ", REMOVED: "− ", KEPT: ""}[kind]
        g.add_edge(
            source,
            dest,
            key=edge_key(source, trigger, dest),
            id=f"t_{source}_{trigger}_{dest}",
            label=f" {mark}{trigger} ",
            color=line,
            fontcolor=line,
            style="dashed" if kind == REMOVED else "solid",
            penwidth="2" if kind != KEPT else "1",
            **{"class": kind},
        )
    return g


def diff_mermaid(d: ChartDiff) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {mm.ident(d.new.initial)}"]
    for kind in (ADDED, REMOVED):
        line, fill = COLOURS[kind]
        lines.append(f"    classDef {kind} fill:{fill},stroke:{line},color:#1b1f24")
    for name, kind in d.states.items():
        sid = mm.ident(name)
        if sid != name:
            lines.append(f'    state "{mm.text(name)}" as {sid}')
        if kind != KEPT:
            lines.append(f"    class {sid} {kind}")
    for (source, trigger, dest), kind in d.arrows.items():
        mark = {ADDED: "+ ", REMOVED: "− ", KEPT: ""}[kind]
        lines.append(f"    {mm.ident(source)} --> {mm.ident(dest)} : {mm.text(mark + trigger, colon=True)}")
    return "\n".join(lines) + "\n"


def diff_export(old: Statechart, new: Statechart, fmt: str) -> bytes:
    d = ChartDiff(old, new)
    if fmt == MERMAID:
        return diff_mermaid(d).encode()
    if fmt in (SVG, PNG, DOT):
        return draw(diff_graph(d), fmt)
    raise ValueError(f"a statechart diff is drawn as {', '.join(DIFF_FORMATS)}, not {fmt!r}")
