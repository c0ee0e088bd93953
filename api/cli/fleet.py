"""`wingman audit fleet`: a fleet's shared database at a glance (engine.audit.fleet), and the
`--node` option the other audit commands take to read one node's part of it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.api.cli.checkpoints import KeyOpt, trusted_key
from wingman.api.cli.output import EXIT_FINDINGS, Fmt, ReportFmt, Stop, chosen, emit, run, short_time
from wingman.api.cli.progress import progress_bar, wanted
from wingman.engine.audit.fleet import FleetSummary, NodeSummary, fleet_summary
from wingman.engine.audit.nodes import node_ids, streams_by_node

NodeOpt = Annotated[
    str | None, typer.Option("--node", help="Only the events this node wrote (a node id of a fleet's database).")
]

NodeStreamsOpt = Annotated[
    str | None, typer.Option("--node", help="Only this node's streams (owned or written), in a fleet's database.")
]


async def known_node(engine: AsyncEngine, node: str | None) -> str | None:
    """`node` when the database knows it (it wrote an event or owns a stream); Stop otherwise."""
    if node is not None and node not in await node_ids(engine):
        known = ", ".join(await node_ids(engine)) or "none (no event names a node)"
        raise Stop(f"no node {node} in this database; the nodes it knows: {known}")
    return node


async def node_streams(engine: AsyncEngine, node: str) -> set[str]:
    """The streams of a known node: those it owns and those it wrote to."""
    await known_node(engine, node)
    return (await streams_by_node(engine)).get(node, set())


def _verdict(n: NodeSummary) -> str:
    if n.report is None:
        return "not checked"
    if n.ok:
        return "OK"
    return f"{n.problems} problem" + ("s" if n.problems > 1 else "")


async def _rows(summary: FleetSummary) -> AsyncIterator[dict[str, Any]]:
    for n in summary.nodes:
        yield {
            "node": n.node or "(none)",
            "servers": len(n.servers),
            "events": n.events,
            "last_event": None if n.last_position is None else f"{n.last_position} at {short_time(n.last_time)}",
            "verify": _verdict(n),
        }


def _print_table(summary: FleetSummary) -> None:
    """The table (one row per node), then each node's servers and first problem, in words."""
    console = Console()
    for n in summary.nodes:
        name = n.node or "no node (events from before node ids)"
        console.print(f"[bold]{escape(name)}[/]: {len(n.servers)} server(s)", highlight=False)
        for server in n.servers:
            console.print(f"  {server}", highlight=False)
        if n.report is not None and n.report.first is not None:
            said = Text.assemble(("first problem", "bold red"), f": {n.report.first}")
            console.print(Padding(said, (0, 0, 0, 2)), highlight=False)
        if n.checkpoints is not None and n.checkpoints.first is not None:
            said = Text.assemble(("first checkpoint problem", "bold red"), f": {n.checkpoints.first}")
            console.print(Padding(said, (0, 0, 0, 2)), highlight=False)
        warnings = [*(n.report.warnings if n.report else []), *(n.checkpoints.warnings if n.checkpoints else [])]
        for w in warnings[:3]:
            console.print(Padding(Text(f"warning: {w}"), (0, 0, 0, 2)), highlight=False)
    if not summary.verified:
        console.print("Not verified (--no-verify).", style="dim")
    elif summary.ok:
        console.print(
            "Every node's streams (hash chains, versions, transitions, operations) and signed checkpoints check out.",
            style="dim",
        )


def fleet(
    node: Annotated[str | None, typer.Option("--node", help="Only this node.")] = None,
    check: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Verify each node's streams (a pass over them).")
    ] = True,
    format: Annotated[
        ReportFmt,
        typer.Option(
            "--format",
            "-F",
            metavar="FORMAT",
            help="auto (a table on a terminal, json when piped), table, json, ndjson.",
        ),
    ] = ReportFmt.auto,
    key: KeyOpt = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Daemon config file (default: $WINGMAN_CONFIG or ./wingman.yml)."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", "-d", help="The fleet's database URL (or a .db file); overrides the config."),
    ] = None,
) -> None:
    """The fleet in one database: each node, its servers, its last event and the verification of its streams.

    A node's servers are those it owns and those whose events it wrote (a server handed over is
    under both). Its verification: its streams (hash chains, versions, transitions, operations) and
    its signed checkpoints (each node's key with --key NODE=KEY; without, the keys they announce).
    Exit 0 when every node checks out, 1 naming each node's first problem."""

    async def job(engine: AsyncEngine) -> int:
        await known_node(engine, node)
        show = wanted() and check
        with progress_bar("verifying the fleet", None, show) as tell:
            summary = await fleet_summary(engine, check, node, progress=lambda _: tell(0), trusted_key=trusted_key(key))
        code = 0 if summary.ok else EXIT_FINDINGS
        fmt = chosen(format)
        if format == ReportFmt.auto and fmt != Fmt.table:
            fmt = Fmt.json
        if fmt != Fmt.table:
            print(json.dumps(summary.as_dict(), ensure_ascii=False, indent=None if fmt == Fmt.ndjson else 2))
            return code
        cols = [
            ("node", "node"),
            ("servers", "servers"),
            ("events", "events"),
            ("last_event", "last event: position at (UTC)"),
            ("verify", "verify"),
        ]
        title = f"Fleet: {len(summary.nodes)} node(s)"
        await emit(_rows(summary), Fmt.table, cols, title, nowrap=tuple(k for k, _ in cols))
        _print_table(summary)
        return code

    run(database, config, job)
