"""`wingman diagram`: the statechart exported, the exports in statecharts/ kept current, and
diagrams of what one server went through (read straight from the database, like `wingman audit`).

Exit codes: 0 done, 1 `check` found stale exports (or a server's log cannot be replayed), 2 bad
input (unknown format, server or chart, bad time, since after until); bad input writes nothing.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.api.cli.audit import ConfigOpt, DatabaseOpt
from wingman.api.cli.output import EXIT_FINDINGS, EXIT_USAGE, Stop, err, known, run, tidy_help, time_of
from wingman.engine.charts.log import chart_in_force
from wingman.engine.diagrams import formats as F
from wingman.engine.diagrams.chart_diff import DIFF_FORMATS, ChartDiff, diff_export
from wingman.engine.diagrams.exported import DEFAULT_CHART, read_chart, stale_exports
from wingman.engine.diagrams.exported import refresh as refresh_exports
from wingman.engine.diagrams.formats import BadDiagramRequest
from wingman.engine.diagrams.history import history_diagram
from wingman.engine.diagrams.statechart import export
from wingman.engine.diagrams.timeline import keep_intervals, timeline_diagram
from wingman.engine.diagrams.window import Window, passage
from wingman.engine.statechart import load_statechart

diagram_app = typer.Typer(
    help="State diagrams: the statechart, and what a server went through. Server diagrams read the "
    "database directly; the daemon need not run.",
    no_args_is_help=True,
)

StatechartFmt = Enum("StatechartFmt", {f: f for f in F.STATECHART_FORMATS}, type=str)
HistoryFmt = Enum("HistoryFmt", {f: f for f in F.HISTORY_FORMATS}, type=str)
TimelineFmt = Enum("TimelineFmt", {f: f for f in F.TIMELINE_FORMATS}, type=str)

ChartOpt = Annotated[
    Path,
    typer.Option("--chart", show_default=False, help="The statechart YAML (default: the one the daemon enforces)."),
]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")]
ServerArg = Annotated[str, typer.Argument(help="The server's UUID.")]
SinceOpt = Annotated[
    str | None, typer.Option(help="Window start, an RFC 3339 time (inclusive; default: the first event).")
]
UntilOpt = Annotated[str | None, typer.Option(help="Window end, an RFC 3339 time (inclusive; default: now).")]


def formats_help(formats: tuple[str, ...]) -> str:
    return f"{', '.join(formats[:-1])} or {formats[-1]}."


def _fail(message: str, code: int = EXIT_USAGE):
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _write(body: bytes, fmt: str, output: Path | None) -> None:
    """The diagram to the file (made only now that the diagram exists), or to standard output."""
    if output is not None:
        try:
            output.write_bytes(body)
        except OSError as exc:
            raise Stop(f"cannot write {output}: {exc.strerror or exc}") from None
        err.print(f"wrote {escape(str(output))} ({len(body)} bytes)", highlight=False)
        return
    if fmt in F.BINARY and sys.stdout.isatty():
        raise Stop(f"a {fmt.upper()} image is binary: name a file with --output (or pipe it)")
    sys.stdout.buffer.write(body)
    sys.stdout.flush()


def _window(since: str | None, until: str | None) -> Window:
    try:
        return Window(time_of(since, "--since"), time_of(until, "--until"))
    except BadDiagramRequest as exc:
        raise Stop(str(exc).replace("since (", "--since (").replace("until (", "--until (")) from None


@diagram_app.command()
def statechart(
    format: Annotated[
        StatechartFmt, typer.Option("--format", "-F", metavar="FORMAT", help=formats_help(F.STATECHART_FORMATS))
    ] = F.DEFAULT_FORMAT,
    output: OutputOpt = None,
    chart: ChartOpt = DEFAULT_CHART,
    diff: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            "--diff",
            metavar="OLD NEW",
            show_default=False,
            help="Draw two charts as one: what NEW adds in green, what it removes in red (svg, png, dot, mermaid).",
        ),
    ] = None,
) -> None:
    """The statechart as a diagram (every state, every transition, the initial state).

    Drawn from the YAML the daemon enforces; --chart draws another one (a change under review, say);
    --diff OLD NEW draws what a change does, and says it in a line on standard error.
    """
    try:
        if diff is not None:
            if format.value not in DIFF_FORMATS:
                raise Stop(f"--diff draws {formats_help(DIFF_FORMATS)}, not {format.value}")
            old, new = (read_chart(path) for path in diff)
            body = diff_export(old, new, format.value)
            _write(body, format.value, output)
            err.print(f"{escape(str(diff[1]))} against {escape(str(diff[0]))}: {ChartDiff(old, new).summary()}")
            return
        parsed = read_chart(chart) if chart != DEFAULT_CHART else load_statechart()
        _write(export(parsed, format.value), format.value, output)
    except (BadDiagramRequest, Stop) as exc:
        _fail(str(exc))


@diagram_app.command()
def refresh(chart: ChartOpt = DEFAULT_CHART) -> None:
    """Rewrite the exports beside the statechart YAML (.mmd, .svg, .scxml) that are stale."""
    try:
        written = refresh_exports(chart)
    except BadDiagramRequest as exc:
        _fail(str(exc))
    except OSError as exc:  # a read-only checkout, say: not bad input, but said as clearly
        _fail(f"cannot write the exports beside {chart}: {exc.strerror or exc}", EXIT_FINDINGS)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"the exports of {chart} are up to date")


@diagram_app.command()
def check(chart: ChartOpt = DEFAULT_CHART) -> None:
    """Check the exports beside the statechart YAML: exit 0 when current, 1 naming the stale ones."""
    try:
        stale = stale_exports(chart)
    except BadDiagramRequest as exc:
        _fail(str(exc))
    if not stale:
        print(f"the exports of {chart} are up to date")
        return
    for item in stale:
        print(f"stale: {item}")
    print(f"run `wingman diagram refresh --chart {chart}` to rewrite them")
    raise typer.Exit(EXIT_FINDINGS)


@diagram_app.command()
def history(
    server: ServerArg,
    since: SinceOpt = None,
    until: UntilOpt = None,
    format: Annotated[
        HistoryFmt, typer.Option("--format", "-F", metavar="FORMAT", help=formats_help(F.HISTORY_FORMATS))
    ] = F.DEFAULT_FORMAT,
    output: OutputOpt = None,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """What SERVER went through, drawn over the statechart.

    Transitions taken in the window heavier, with a count; states never visited faded; the end state marked.
    """

    async def job(engine: AsyncEngine) -> int:
        window = _window(since, until)
        p = await passage(engine, await known(engine, server), window)
        # drawn over the chart the log says is in force (system.statechart may not be the packaged one)
        _write(history_diagram(await chart_in_force(engine), p, format.value), format.value, output)
        return 0

    run(database, config, job)


@diagram_app.command()
def timeline(
    server: ServerArg,
    since: SinceOpt = None,
    until: UntilOpt = None,
    format: Annotated[
        TimelineFmt, typer.Option("--format", "-F", metavar="FORMAT", help=formats_help(F.TIMELINE_FORMATS))
    ] = F.DEFAULT_FORMAT,
    output: OutputOpt = None,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """SERVER's states over time, each change labelled with when, its cause and its actor."""

    async def job(engine: AsyncEngine) -> int:
        window = _window(since, until)
        p = await passage(engine, await known(engine, server), window, keep_intervals())
        try:
            body = timeline_diagram(await chart_in_force(engine), p, format.value)
        except BadDiagramRequest as exc:
            raise Stop(str(exc).replace("with since and until", "with --since and --until")) from None
        _write(body, format.value, output)
        return 0

    run(database, config, job)


tidy_help(diagram_app)


if __name__ == "__main__":
    diagram_app()
