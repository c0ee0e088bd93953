"""The timeline diagram: a server's states over time, each change labelled with when, why and who,
so an incident reads at a glance and pastes into a ticket.

Mermaid gets a sequence diagram (one lifeline per state, one arrow per change, a note with how
long each state lasted); SVG and PNG a Graphviz strip of the same intervals, top to bottom,
coloured by state, each box as tall as its interval was long on a log scale (a 7 ms state and a
10-minute one do not look alike, and a day still fits on a screen) and saying how long in words.
Both read the same Passage (engine.diagrams.window), so they show the same changes.
"""

from __future__ import annotations

import json
import math
import textwrap
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wingman.engine.audit.timeline import Interval
from wingman.engine.diagrams import mermaid as mm
from wingman.engine.diagrams.formats import MERMAID, PNG, SVG, TIMELINE_FORMATS, BadDiagramRequest
from wingman.engine.diagrams.render import draw, html_text, new_graph
from wingman.engine.diagrams.window import Passage
from wingman.engine.statechart import Statechart

if TYPE_CHECKING:  # Graphviz is loaded when a diagram is drawn, not with the daemon (~10 MB)
    import pygraphviz

# A timeline longer than this is not read at a glance (and Graphviz's layout of it holds the
# event loop for tens of milliseconds): narrowing the window is the answer.
MAX_CHANGES = 200
# A box's height in inches: MIN_HEIGHT for a millisecond or less (its three lines of text), then
# PER_DECADE more for each tenfold of duration (7 ms: 0.85, 1 s: 1.5, 10 min: 2.3, a day: 3.0).
MIN_HEIGHT, PER_DECADE, MAX_HEIGHT = 0.6, 0.3, 3.6
PALETTE = ("#e3e8ef", "#fdf0d5", "#dcefdc", "#fbe3d6", "#e6def3", "#d9edf2", "#f3dde6", "#ececd8")


def keep_intervals() -> int:
    """How many intervals to read for a timeline: one more than it may draw, to know it is too many."""
    return MAX_CHANGES + 2


def when(ts: datetime | None) -> str:
    if ts is None:
        return "now"
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def how_long(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return " ".join(part for part in (f"{d}d" if d else "", f"{h}h" if d or h else "", f"{m}m", f"{s}s") if part)


def box_height(seconds: float) -> float:
    """How tall an interval's box is drawn, in inches: see MIN_HEIGHT."""
    decades = math.log10(max(seconds * 1000, 1.0))
    return round(min(MIN_HEIGHT + PER_DECADE * decades, MAX_HEIGHT), 3)


def change_words(iv: Interval) -> str:
    """The change that ended `iv`: its trigger, its cause in words, who asked for it (the operator
    of the operation it belongs to, else what recorded it) and through which channel."""
    e = iv.ended_by or {}
    return iv.why + (f" via {e['channel']}" if e.get("channel") and e.get("actor") else "")


def _checked(p: Passage) -> list[Interval]:
    if p.intervals_total - 1 > MAX_CHANGES:
        raise BadDiagramRequest(
            f"the window holds {p.intervals_total - 1} state changes; a timeline draws at most {MAX_CHANGES}: "
            "narrow it with since and until"
        )
    return p.intervals


def _span(iv: Interval, p: Passage) -> tuple[str, str, float]:
    """When the interval began (or that it began before the window), how long it lasted in words,
    and in seconds (an ongoing one: up to the window's end, or now)."""
    began = when(iv.start) + (" (before the window)" if p.window.since and iv.start < p.window.since else "")
    if iv.end is None:
        seconds = iv.seconds(p.window.until or datetime.now(UTC))
        lasted = (
            f"{how_long(seconds)} so far"
            if p.window.until is None
            else f"{how_long(seconds)} up to the window's end, and on"
        )
    elif p.window.until and iv.end > p.window.until:
        seconds = iv.seconds()
        lasted = f"{how_long(seconds)}, until {when(iv.end)} (after the window)"
    else:
        seconds = iv.seconds()
        lasted = how_long(seconds)
    return began, lasted, seconds


def title(p: Passage) -> str:
    return f"Server {p.server}: power states {p.window.describe()}"


def timeline_mermaid(chart: Statechart, p: Passage) -> str:
    intervals = _checked(p)
    lines = [
        "---",
        f"title: {json.dumps(title(p), ensure_ascii=False)}",
        "---",
        "sequenceDiagram",
        "    %% One lifeline per state; each arrow is a change (time, trigger, cause, actor, channel).",
    ]
    names = list(chart.states) + sorted({iv.state for iv in intervals} - set(chart.states))
    for name in names:
        lines.append(f"    participant {mm.ident(name)} as {mm.text(name)}")
    if not intervals:
        lines.append(f"    Note over {mm.ident(chart.initial)}: {mm.text('the server has no events in this window')}")
    for i, iv in enumerate(intervals):
        sid = mm.ident(iv.state)
        began, lasted, _ = _span(iv, p)
        note = f"in {iv.state} since {began}, for {lasted}" if i == 0 else f"for {lasted}"
        lines.append(f"    Note over {sid}: {mm.text(note)}")
        if iv.ended_by is None or iv.end is None or (p.window.until and iv.end > p.window.until):
            continue
        nxt = intervals[i + 1] if i + 1 < len(intervals) else None
        if iv.ended_by.get("trigger") and nxt is not None:
            lines.append(f"    {sid}->>{mm.ident(nxt.state)}: {mm.text(f'{when(iv.end)} {change_words(iv)}')}")
        else:  # deleted: no state follows until it is registered again
            lines.append(f"    Note over {sid}: {mm.text(f'{when(iv.end)} {change_words(iv)}')}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 44) -> str:
    return "<BR/>".join(html_text(line) for line in textwrap.wrap(text, width, break_on_hyphens=False))


def timeline_graph(chart: Statechart, p: Passage) -> pygraphviz.AGraph:
    intervals = _checked(p)
    g = new_graph(
        f"timeline {p.server}",
        label=f"{title(p)}\nA box is as tall as the state lasted (log scale: each step up is ten times longer)",
        labelloc="t",
        rankdir="TB",
        ranksep="0.35",
    )
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(chart.states)}
    if not intervals:
        g.add_node("empty", shape="plaintext", label="the server has no events in this window")
    for i, iv in enumerate(intervals):
        began, lasted, seconds = _span(iv, p)
        g.add_node(
            f"i{i}",
            id=f"interval_{i}",
            shape="box",
            style="rounded,filled",
            color="#5b6b80",
            fillcolor=colour.get(iv.state, "#fdecea"),
            height=str(box_height(seconds)),
            tooltip=f"{iv.state} for {lasted}, from {began}",
            label=f'<<B>{html_text(iv.state)}</B><BR/><FONT POINT-SIZE="11"><B>for {html_text(lasted)}</B></FONT>'
            f'<BR/><FONT POINT-SIZE="10">from {html_text(began)}</FONT>>',
        )
        if i == 0:
            continue
        before = intervals[i - 1]
        changed = bool((before.ended_by or {}).get("trigger"))
        g.add_edge(
            f"i{i - 1}",
            f"i{i}",
            id=f"change_{i}",
            style="solid" if changed else "dashed",
            label=f'<<FONT POINT-SIZE="10"><B>{html_text(when(before.end))}</B><BR/>'
            f"{_wrap(change_words(before))}</FONT>>"
            if changed
            else f'<<FONT POINT-SIZE="10">{html_text(when(before.end))}<BR/>{_wrap(change_words(before))}'
            f"<BR/>registered again {html_text(when(iv.start))}</FONT>>",
        )
    last = intervals[-1] if intervals else None
    if last is not None and last.end is not None and not (p.window.until and last.end > p.window.until):
        g.add_node("deleted", shape="plaintext", label=f"{when(last.end)}: {change_words(last)}")
        g.add_edge(f"i{len(intervals) - 1}", "deleted", style="dashed")
    return g


def timeline_diagram(chart: Statechart, p: Passage, fmt: str) -> bytes:
    """The timeline in one of TIMELINE_FORMATS; BadDiagramRequest when the window holds too much."""
    if fmt == MERMAID:
        return timeline_mermaid(chart, p).encode()
    if fmt in (SVG, PNG):
        return draw(timeline_graph(chart, p), fmt)
    raise ValueError(f"a timeline is drawn as {', '.join(TIMELINE_FORMATS)}, not {fmt!r}")
