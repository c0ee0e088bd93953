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

from wingman.api.cli.audit_configuration import configuration_rows
from wingman.api.cli.checkpoints import (
    CheckpointsOpt,
    KeyOpt,
    checkpoint_file,
    node_checkpoints,
    print_checkpoints,
    prove,
    trusted_key,
)
from wingman.api.cli.cosignatures import (
    CosignaturesOpt,
    WitnessOpt,
    check_cosignatures,
    print_cosignatures,
    witness_keys,
)
from wingman.api.cli.fleet import NodeOpt, NodeStreamsOpt, fleet, known_node, node_streams
from wingman.api.cli.output import (
    EXIT_FINDINGS,
    ExportFmt,
    Fmt,
    ReportFmt,
    Stop,
    chosen,
    duration,
    emit,
    err,
    known,
    point_of,
    run,
    short_time,
    tidy_help,
    time_of,
)
from wingman.api.cli.progress import progress_bar, wanted
from wingman.engine.audit.describe import describe
from wingman.engine.audit.export import export as export_log
from wingman.engine.audit.export import how_many
from wingman.engine.audit.nodes import NodeFilter, node_at, shared, with_nodes
from wingman.engine.audit.timeline import timeline as timeline_of
from wingman.engine.audit.verify import verify_everything
from wingman.engine.servers.replay import UnknownStream, state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.store.queries import EventFilter

audit_app = typer.Typer(
    help="Audit the event log: history, state at any moment, verification, export and timelines. "
    "Reads the database directly; the daemon need not run.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Daemon config file (default: $WINGMAN_CONFIG or ./wingman.yml).")
]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database", "-d", help="Database URL or path of a .db file; overrides the config.")
]
ServerArg = Annotated[str, typer.Argument(help="The server's UUID.")]
FormatOpt = Annotated[
    Fmt,
    typer.Option(
        "--format",
        "-F",
        metavar="FORMAT",
        help="auto (a table on a terminal, ndjson when piped), table, json, ndjson or csv.",
    ),
]
ReportFormatOpt = Annotated[
    ReportFmt,
    typer.Option(
        "--format",
        "-F",
        metavar="FORMAT",
        help="auto (a table on a terminal, ndjson when piped), table, json or ndjson.",
    ),
]
PagerOpt = Annotated[bool, typer.Option("--pager", help="Page the table with less -FRX (or $PAGER) on a terminal.")]


@audit_app.command()
def history(
    server: ServerArg,
    since: Annotated[str | None, typer.Option(help="Only events at or after this RFC 3339 time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only events at or before this RFC 3339 time.")] = None,
    type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Event type, e.g. power.requested or power.* (repeatable).")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only events by this actor.")] = None,
    operation: Annotated[str | None, typer.Option(help="Only events of this operation id.")] = None,
    format: FormatOpt = Fmt.auto,
    pager: PagerOpt = False,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """One line per event of SERVER in plain words: time, node, actor, channel, what happened, why.

    In a fleet's shared database the history is the server's whichever node wrote it: each event
    names the node that wrote it (none: written before node ids)."""

    async def job(engine: AsyncEngine) -> int:
        flt = EventFilter(
            stream_id=await known(engine, server),
            types=type or [],
            actor=actor,
            operation_id=operation,
            since=time_of(since, "--since"),
            until=time_of(until, "--until"),
        )
        if flt.since and flt.until and flt.since > flt.until:
            raise Stop("--since is after --until")

        fmt = chosen(format)

        async def rows():
            async for events in with_nodes(engine, flt):
                for ev, node in events:
                    row = describe(ev).as_dict() | {"node": node}
                    if fmt == Fmt.table:
                        row["time"] = short_time(row["time"])
                    yield row

        cols = [
            ("time", "time (UTC)"),
            *([("node", "node")] if await shared(engine) else []),  # a fleet's database: which node wrote it
            ("actor", "actor"),
            ("channel", "channel"),
            ("what", "what happened"),
            ("why", "why"),
        ]
        if fmt != Fmt.table:
            # every field of a line, in this order (the machine formats' columns)
            fields = "position version time server type actor channel what why operation_id source_ip node"
            cols = [(k, k) for k in fields.split()]
        nowrap = ("time", "node", "actor", "channel")
        await emit(rows(), fmt, cols, f"History of {server}", nowrap=nowrap, pager=pager)
        return 0

    run(database, config, job)


@audit_app.command()
def state(
    server: ServerArg,
    at: Annotated[str | None, typer.Option("--at", help="RFC 3339 time or log position (default: now).")] = None,
    format: ReportFormatOpt = ReportFmt.auto,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """SERVER's state rebuilt from the log at a moment (the whole configuration with --format json).

    Its power state, suspension, the operation in flight, the last transition (with its cause and
    actor) and the configuration an operator reads: name, runtime, command, limits, allocations."""

    async def job(engine: AsyncEngine) -> int:
        point = point_of(at, "--at")
        try:
            # The replay cannot say how far it is (a snapshot may spare most of it): a pulse and the time.
            with progress_bar(f"replaying the log of {server}", None, wanted()):
                answer = (await state_at(engine, server, point, SnapshotCache(engine))).as_dict()
        except UnknownStream:
            raise Stop(f"no server {server} in this log") from None
        answer["node"] = await node_at(engine, answer.get("position"))
        if chosen(format) != Fmt.table:
            print(json.dumps(answer, ensure_ascii=False, indent=None if format == ReportFmt.ndjson else 2))
            return 0
        console = Console()
        when = at or "now"
        if not answer["exists"]:
            console.print(f"Server {server} did not exist yet at {when}.")
            return 0
        fleet_rows = [("written by node", answer["node"] or "none named")] if await shared(engine) else []
        t = Table(title=f"{server} at {when}", show_header=False)
        t.add_column(style="bold")
        t.add_column(overflow="fold")
        lt = answer["last_transition"] or {}
        op = answer["operation_in_flight"]
        for label, value in (
            [
                ("power state", answer["state"]),
                ("suspended", "yes" if answer["suspended"] else "no"),
                ("deleted", "yes" if answer["deleted"] else "no"),
                (
                    "operation in flight",
                    f"{op.get('action', '?')} {op['id']} (asked by {op.get('actor')} via {op.get('channel')})"
                    if op
                    else "none",
                ),
                (
                    "last transition",
                    f"{lt.get('from')} → {lt.get('to')} ({lt.get('trigger')}) at {lt.get('at')}, "
                    f"cause {lt.get('cause')}, by {lt.get('actor')}"
                    if lt
                    else "none yet",
                ),
                ("last event", f"v{answer['version']} at position {answer['position']}, {answer['as_of']}"),
            ]
            + configuration_rows(answer["configuration"])
            + fleet_rows
        ):
            t.add_row(label, escape(str(value)))
        console.print(t)
        console.print("The whole configuration: --format json.", style="dim")
        return 0

    run(database, config, job)


@audit_app.command()
def verify(
    server: Annotated[str | None, typer.Argument(help="Only this server's stream (default: the whole log).")] = None,
    key: KeyOpt = None,
    checkpoints: CheckpointsOpt = None,
    format: Annotated[
        ReportFmt,
        typer.Option("--format", "-F", metavar="FORMAT", help="auto or table (text), json or ndjson (one line)."),
    ] = ReportFmt.auto,
    node: NodeStreamsOpt = None,
    witness: WitnessOpt = None,
    cosignatures: CosignaturesOpt = None,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Check the log: hash chains, versions, transitions, operations and signed checkpoints.

    Each problem names the node that wrote its event; --node checks that node's streams only.

    Checkpoints: signatures with --key, roots, consistency, truncation. Exit 0 when it all checks
    out, 1 naming the first bad event or position and what is wrong.

    Witnesses: --witness KEY (repeat) checks their kept cosignatures against the log; --cosignatures N
    requires N of them to vouch for it."""

    async def job(engine: AsyncEngine) -> int:
        if server is not None:
            await known(engine, server)
        streams = None if node is None else await node_streams(engine, node)
        trusted, file = trusted_key(key), checkpoint_file(checkpoints, database, config)
        witness_given = witness_keys(witness, cosignatures)
        show = wanted()
        total = await how_many(engine, NodeFilter(stream_id=server, stream_ids=streams)) if show else None
        scope = f"server {server}" if server else f"node {node}" if node else "the log"
        part = {"streams": streams, "node": node}
        with progress_bar(f"verifying {scope}", total, show) as tell:
            report, cp = await verify_everything(engine, server, trusted, file, progress=tell, **part)
        cp = cp or await node_checkpoints(engine, server, node, trusted, file)
        cs = await check_cosignatures(engine, witness_given, cosignatures)
        logged_ok = report.ok and (cp is None or cp.ok)
        ok = logged_ok and (cs is None or cs.ok)
        if format in (ReportFmt.json, ReportFmt.ndjson):
            doc = report.as_dict() | {
                "ok": ok,
                "hash_chains_ok": report.ok,
                "checkpoints": cp.as_dict() if cp is not None else None,
            }
            if cs is not None:
                doc["cosignatures"] = cs.as_dict()
            print(json.dumps(doc, ensure_ascii=False, indent=2 if format == ReportFmt.json else None))
            return 0 if ok else EXIT_FINDINGS
        if logged_ok:
            print(
                f"OK: {scope} checks out: {report.events_checked} events in {report.streams_checked} streams "
                "(hash chains, versions, transitions, operations). Live state: not checked (reading the database only)."
            )
        elif report.ok:
            print(
                f"The hash chains, versions, transitions and operations of {report.events_checked} events in "
                f"{report.streams_checked} streams check out, but the log does not match its signed checkpoints:"
            )
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
            which = "one server" if server else "one node"
            print(
                f"Checkpoints: not checked for {which} (they vouch for the whole log: verify without SERVER or --node)."
            )
        else:
            print_checkpoints(cp)
        if cs is not None:
            print_cosignatures(cs)
        return 0 if ok else EXIT_FINDINGS

    run(database, config, job)


audit_app.command()(prove)
audit_app.command()(fleet)


@audit_app.command()
def export(
    format: Annotated[
        ExportFmt, typer.Option("--format", "-F", metavar="FORMAT", help="ndjson or csv.")
    ] = ExportFmt.ndjson,
    since: Annotated[str | None, typer.Option(help="Only events at or after this RFC 3339 time.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
    ] = None,
    node: NodeOpt = None,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Stream the whole log (every event as stored, with its hashes and its node) in constant memory.

    --node keeps the events that node wrote (in a fleet's shared database)."""

    async def job(engine: AsyncEngine) -> int:
        flt = NodeFilter(since=time_of(since, "--since"), node_id=await known_node(engine, node))
        show = wanted(output_is_stdout=output is None)
        total = await how_many(engine, flt) if show else None
        with progress_bar("exporting", total, show) as tell:
            if output is None:
                n = await export_log(engine, sys.stdout, format.value, flt, progress=tell)
            else:
                with open(output, "w", encoding="utf-8", newline="") as fh:
                    n = await export_log(engine, fh, format.value, flt, progress=tell)
        if output is not None:
            err.print(f"exported {n} events to {escape(str(output))}", highlight=False)
        return 0

    run(database, config, job)


@audit_app.command()
def timeline(
    server: ServerArg,
    format: FormatOpt = Fmt.auto,
    pager: PagerOpt = False,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """SERVER's state intervals: from, to, state, how long, and why each one ended (and on which node:
    the node that wrote the event that ended it)."""

    async def job(engine: AsyncEngine) -> int:
        await known(engine, server)

        fmt = chosen(format)

        async def rows():
            async for iv in timeline_of(engine, server):
                row = iv.as_dict()
                row["node"] = await node_at(engine, iv.ended_by["position"] if iv.ended_by else None)
                if fmt == Fmt.table:
                    row["how_long"] = duration(row["seconds"]) + (" so far" if row["ongoing"] else "")
                    row["from"], row["to"] = short_time(row["from"]), short_time(row["to"]) or "now"
                yield row

        cols = [
            ("from", "from (UTC)"),
            ("to", "to (UTC)"),
            ("state", "state"),
            ("how_long", "how long"),
            *([("node", "ended on")] if await shared(engine) else []),
            ("why_it_ended", "why it ended"),
        ]
        if fmt != Fmt.table:
            cols = [(k, k) for k in ("from", "to", "state", "seconds", "ongoing", "why_it_ended", "ended_by", "node")]
        nowrap = ("from", "to", "state", "how_long", "node")
        await emit(rows(), fmt, cols, f"Timeline of {server}", nowrap=nowrap, pager=pager)
        return 0

    run(database, config, job)


tidy_help(audit_app)


if __name__ == "__main__":
    audit_app()
