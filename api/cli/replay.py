"""`wingman audit replay --statechart NEW.yaml`: what a changed statechart would make of the history
already recorded (engine.audit.what_if), before the change is deployed.

Exit codes: 0 the new chart accepts all of history, 1 it does not (each finding said), 2 bad
input (a chart that does not load, an unknown server, a bad time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.api.cli.audit import ConfigOpt, DatabaseOpt
from wingman.api.cli.output import EXIT_FINDINGS, EXIT_USAGE, ReportFmt, Stop, err, known, run, time_of
from wingman.engine.audit.what_if import render, replay_against
from wingman.engine.diagrams.exported import read_chart
from wingman.engine.diagrams.formats import BadDiagramRequest

SHOWN = 20  # findings printed as text; --format json has them all (up to the engine's cap)


def replay(
    statechart: Annotated[Path, typer.Option("--statechart", help="The changed statechart YAML to replay against.")],
    server: Annotated[str | None, typer.Option("--server", help="Only this server's history.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only transitions from this RFC 3339 time on.")] = None,
    format: Annotated[
        ReportFmt,
        typer.Option("--format", "-F", metavar="FORMAT", help="auto or table (text), json or ndjson (one line)."),
    ] = ReportFmt.auto,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Replay the recorded history through a changed statechart, and say what it would refuse.

    Reports each recorded transition the new chart would refuse or send elsewhere, each recorded
    state it lacks, and each server whose state it would change. Exit 0 when it accepts all of
    history, 1 otherwise."""
    try:
        chart = read_chart(statechart)
        start = time_of(since, "--since")
    except (BadDiagramRequest, Stop) as exc:  # a chart that does not load, a bad time: bad input
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None

    async def job(engine: AsyncEngine) -> int:
        if server is not None:
            await known(engine, server)
        report = await replay_against(engine, chart, str(statechart), server, start)
        if format in (ReportFmt.json, ReportFmt.ndjson):
            print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2 if format == ReportFmt.json else None))
            return 0 if report.accepted else EXIT_FINDINGS
        scope = (f"server {server}" if server else "the log") + (f" since {since}" if since else "")
        for line in render(report, scope, SHOWN):
            print(line)
        return 0 if report.accepted else EXIT_FINDINGS

    run(database, config, job)
