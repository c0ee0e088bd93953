"""`wingman audit`: the auditor's commands. They read the database directly (the daemon need not
run), so an auditor can work on a copy of the database file.

Exit codes: 0 done (verify: the log checks out), 1 verify found a problem or a server's log cannot
be replayed, 2 bad input (unknown server, bad time, missing database or config).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from api.cli.output import (
    EXIT_FINDINGS, ExportFmt, Fmt, Stop, chosen, duration, emit, err, known, point_of, run, short_time, time_of,
)
from api.cli.checkpoints import CheckpointsOpt, KeyOpt, checkpoint_file, print_checkpoints, prove, trusted_key
from engine.audit.describe import describe
from engine.audit.export import export as export_log
from engine.audit.timeline import timeline as timeline_of
from engine.audit.verify import verify_everything
from engine.servers.replay import UnknownStream, state_at
from engine.servers.snapshot_cache import SnapshotCache
from engine.store.queries import EventFilter, iterate

audit_app = typer.Typer(
    help="Audit the event log: history, state at any moment, verification, export and timelines. "
         "Reads the database directly; the daemon need not run.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Daemon config file (default: $WINGMAN_CONFIG or ./wingman.yml).")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", "-d", help="Database URL or path of a .db file; overrides the config.")]
ServerArg = Annotated[str, typer.Argument(help="The server's UUID.")]
FormatOpt = Annotated[Fmt, typer.Option("--format", "-f", help="table on a terminal, ndjson when piped (auto), or as named.")]


@audit_app.command()
def history(
    server: ServerArg,
    since: Annotated[str | None, typer.Option(help="Only events at or after this RFC 3339 time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only events at or before this RFC 3339 time.")] = None,
    type: Annotated[list[str] | None, typer.Option("--type", "-t", help="Event type, e.g. power.requested or power.* (repeatable).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only events by this actor.")] = None,
    operation: Annotated[str | None, typer.Option(help="Only events of this operation id.")] = None,
    format: FormatOpt = Fmt.auto,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """One line per event of SERVER in plain words: time, actor, channel, what happened, why."""
    async def job(engine: AsyncEngine) -> int:
        flt = EventFilter(stream_id=await known(engine, server), types=type or [], actor=actor,
                          operation_id=operation, since=time_of(since, "--since"), until=time_of(until, "--until"))
        if flt.since and flt.until and flt.since > flt.until:
            raise Stop("--since is after --until")

        fmt = chosen(format)

        async def rows():
            async for ev in iterate(engine, flt):
                row = describe(ev).as_dict()
                if fmt == Fmt.table:
                    row["time"] = short_time(row["time"])
                yield row

        cols = [("time", "time (UTC)"), ("actor", "actor"), ("channel", "channel"), ("what", "what happened"),
                ("why", "why")]
        if fmt != Fmt.table:
            cols = [(k, k) for k in ("position", "version", "time", "server", "type", "actor", "channel", "what",
                                     "why", "operation_id", "source_ip")]
        await emit(rows(), fmt, cols, f"History of {server}", nowrap=("time",))
        return 0

    run(database, config, job)


@audit_app.command()
def state(
    server: ServerArg,
    at: Annotated[str | None, typer.Option("--at", help="RFC 3339 time or log position (default: now).")] = None,
    format: FormatOpt = Fmt.auto,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """SERVER's state rebuilt from the log at a moment: power state, configuration, suspension,
    the operation in flight and the last transition (with its cause and actor)."""
    async def job(engine: AsyncEngine) -> int:
        if format == Fmt.csv:
            raise Stop("a state has no CSV form; use --format json or table")
        point = point_of(at, "--at")
        try:
            answer = (await state_at(engine, server, point, SnapshotCache(engine))).as_dict()
        except UnknownStream:
            raise Stop(f"no server {server} in this log") from None
        if chosen(format) != Fmt.table:
            print(json.dumps(answer, ensure_ascii=False, indent=None if format == Fmt.ndjson else 2))
            return 0
        console = Console()
        when = at or "now"
        if not answer["exists"]:
            console.print(f"Server {server} did not exist yet at {when}.")
            return 0
        t = Table(title=f"{server} at {when}", show_header=False)
        t.add_column(style="bold")
        t.add_column(overflow="fold")
        lt = answer["last_transition"] or {}
        op = answer["operation_in_flight"]
        for label, value in [
            ("power state", answer["state"]), ("suspended", "yes" if answer["suspended"] else "no"),
            ("deleted", "yes" if answer["deleted"] else "no"),
            ("operation in flight", f"{op.get('action', '?')} {op['id']} (asked by {op.get('actor')} via {op.get('channel')})" if op else "none"),
            ("last transition", f"{lt.get('from')} → {lt.get('to')} ({lt.get('trigger')}) at {lt.get('at')}, cause {lt.get('cause')}, by {lt.get('actor')}" if lt else "none yet"),
            ("last event", f"v{answer['version']} at position {answer['position']}, {answer['as_of']}"),
            ("configuration", json.dumps(answer["configuration"], ensure_ascii=False)),
        ]:
            t.add_row(label, escape(str(value)))
        console.print(t)
        return 0

    run(database, config, job)


@audit_app.command()
def verify(
    server: Annotated[str | None, typer.Argument(help="Only this server's stream (default: the whole log).")] = None,
    key: KeyOpt = None,
    checkpoints: CheckpointsOpt = None,
    format: Annotated[Fmt, typer.Option("--format", "-f", help="text (auto/table) or json.")] = Fmt.auto,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Check hash chains, versions, transitions and operation outcomes, and the log against its
    signed checkpoints (signatures with --key, roots, consistency, truncation). Exit 0 when it all
    checks out, 1 naming the first bad event or position and what is wrong."""
    async def job(engine: AsyncEngine) -> int:
        if format == Fmt.csv:
            raise Stop("a verification report has no CSV form; use --format json or table")
        if server is not None:
            await known(engine, server)
        trusted, file = trusted_key(key), checkpoint_file(checkpoints, database, config)
        report, cp = await verify_everything(engine, server, trusted, file)
        ok = report.ok and (cp is None or cp.ok)
        if format in (Fmt.json, Fmt.ndjson):
            doc = report.as_dict() | {"ok": ok, "hash_chains_ok": report.ok,
                                      "checkpoints": cp.as_dict() if cp is not None else None}
            print(json.dumps(doc, ensure_ascii=False, indent=2 if format == Fmt.json else None))
            return 0 if ok else EXIT_FINDINGS
        scope = f"server {server}" if server else "the log"
        if report.ok and (cp is None or cp.ok):
            print(f"OK: {scope} checks out: {report.events_checked} events in {report.streams_checked} streams "
                  "(hash chains, versions, transitions, operations). Live state: not checked (reading the database only).")
        elif report.ok:
            print(f"The hash chains, versions, transitions and operations of {report.events_checked} events in "
                  f"{report.streams_checked} streams check out, but the log does not match its signed checkpoints:")
        else:
            print(f"PROBLEM: {report.findings_total} problem(s) in {scope}; the first bad event:")
            print(f"  {report.first}")
            for f in report.findings[1:10]:
                print(f"  then: {f}")
            if report.findings_total > 10:
                print(f"  ... and {report.findings_total - 10} more (use --format json)")
        for w in report.warnings:
            print(f"warning: {w}")
        if cp is None:
            print("Checkpoints: not checked for one server (they vouch for the whole log: verify without SERVER).")
        else:
            print_checkpoints(cp)
        return 0 if ok else EXIT_FINDINGS

    run(database, config, job)


audit_app.command()(prove)


@audit_app.command()
def export(
    format: Annotated[ExportFmt, typer.Option("--format", "-f", help="ndjson or csv.")] = ExportFmt.ndjson,
    since: Annotated[str | None, typer.Option(help="Only events at or after this RFC 3339 time.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")] = None,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Stream the whole log (every event as stored, with its hashes) in constant memory."""
    async def job(engine: AsyncEngine) -> int:
        flt = EventFilter(since=time_of(since, "--since"))
        if output is None:
            n = await export_log(engine, sys.stdout, format.value, flt)
        else:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                n = await export_log(engine, fh, format.value, flt)
        if output is not None:
            err.print(f"exported {n} events to {escape(str(output))}", highlight=False)
        return 0

    run(database, config, job)


@audit_app.command()
def timeline(
    server: ServerArg,
    format: FormatOpt = Fmt.auto,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """SERVER's state intervals: from, to, state, how long, and why each one ended."""
    async def job(engine: AsyncEngine) -> int:
        await known(engine, server)

        fmt = chosen(format)

        async def rows():
            async for iv in timeline_of(engine, server):
                row = iv.as_dict()
                if fmt == Fmt.table:
                    row["how_long"] = duration(row["seconds"]) + (" so far" if row["ongoing"] else "")
                    row["from"], row["to"] = short_time(row["from"]), short_time(row["to"]) or "now"
                yield row

        cols = [("from", "from (UTC)"), ("to", "to (UTC)"), ("state", "state"), ("how_long", "how long"),
                ("why_it_ended", "why it ended")]
        if fmt != Fmt.table:
            cols = [(k, k) for k in ("from", "to", "state", "seconds", "ongoing", "why_it_ended", "ended_by")]
        await emit(rows(), fmt, cols, f"Timeline of {server}", nowrap=("from", "to"))
        return 0

    run(database, config, job)


if __name__ == "__main__":
    audit_app()
