"""`wingman events`: the daemon's log from a shell, and with `--follow` live as it commits.

It reads `GET /api/events` (pages) or, with `--follow`, `GET /api/events/stream` (Server-Sent
Events). A followed stream that breaks (the daemon restarts, a proxy drops it) is resumed from the
last position printed, so the output has no gap and no duplicate. On a terminal the events are a
table, one row per event as it arrives; piped, they are NDJSON (one event's JSON per line, flushed
at once), for scripts and auditors.

Exit codes: 0 done (or stopped with Ctrl-C), 1 the daemon refused (bad filter, unknown server),
2 the daemon cannot be reached (without --follow) or bad usage.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from wingman.api.cli.client import call, daemon_client, err, out, refused
from wingman.engine.event_types import EventType

RETRY_SECONDS = (0.5, 1, 2, 5)  # waits between reconnections while the daemon is away
COLUMNS = (("position", 8), ("time", 19), ("server", 8), ("type", 28), ("actor", 12))
WIDE = 120  # the type column only from this width on: below it, "what" says the same in words


class EventsFormat(StrEnum):
    auto = "auto"
    table = "table"
    ndjson = "ndjson"


def _params(server: str | None, after: int, types: list[str] | None) -> dict:
    params: dict = {"after": after}
    if server:
        params["server"] = server
    if types:
        params["type"] = ",".join(types)
    return params


def sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """The `data:` documents of a Server-Sent Events stream (comments and `retry:` skipped)."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            yield json.loads("\n".join(data))
            data = []


class Printer:
    """One event per row on a terminal (the header once), or one JSON line each when piped."""

    def __init__(self, fmt: EventsFormat, console: Console):
        self.table = fmt == EventsFormat.table or (fmt == EventsFormat.auto and sys.stdout.isatty())
        self.console = console
        self._header = False

    def _columns(self) -> list[tuple[str, int]]:
        return [c for c in COLUMNS if c[0] != "type" or self.console.width >= WIDE]

    def _row(self, cells: dict[str, str], style: str | None = None) -> Table:
        columns = self._columns()
        grid = Table.grid(
            *[Column(no_wrap=True, width=w, overflow="ellipsis") for _, w in columns],
            Column(ratio=1, overflow="fold"),
            padding=(0, 1),
            expand=True,
        )
        grid.add_row(*[escape(cells[name]) for name, _ in columns], escape(cells["what"]), style=style)
        return grid

    def show(self, ev: dict) -> None:
        if not self.table:
            sys.stdout.write(json.dumps(ev, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            return
        if not self._header:
            self.console.print(self._row({name: name for name, _ in COLUMNS} | {"what": "what (why)"}, style="bold"))
            self._header = True
        why = f" ({ev['why']})" if ev.get("why") else ""
        meta = ev.get("metadata") or {}
        self.console.print(
            self._row(
                {
                    "position": str(ev["position"]),
                    "time": str(ev.get("recorded_at", ""))[:19],
                    "server": ev["server"][:8],
                    "type": ev["type"],
                    "actor": str(meta.get("actor") or ""),
                    "what": what_of(ev) + why,
                }
            )
        )


def what_of(ev: dict) -> str:
    """What happened in words (a state change as `offline → starting`), else the event's type."""
    if ev.get("what"):
        return ev["what"]
    data = ev.get("data") or {}
    if ev["type"] == EventType.STATE_CHANGED and "from_state" in data:
        return f"state {data['from_state']} → {data['to_state']}"
    return ev["type"]


def events(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing events as they commit.")] = False,
    server: Annotated[str | None, typer.Option(help="Only this server's events.")] = None,
    after: Annotated[int, typer.Option(min=0, help="Start after this log position (default: the beginning).")] = 0,
    types: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Event type, or a prefix as power.* (repeatable).")
    ] = None,
    format: Annotated[
        EventsFormat,
        typer.Option(
            "--format", "-F", metavar="FORMAT", help="auto (a table on a terminal, ndjson when piped), table or ndjson."
        ),
    ] = EventsFormat.auto,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (default: $WINGMAN_CONFIG or ./wingman.yml).")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", envvar="WINGMAN_URL", help="Daemon URL (default: from the config).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="WINGMAN_TOKEN", help="Node or audit token (default: from the config)."),
    ] = None,
) -> None:
    """Print the event log (an audit token is enough); with --follow, live, resuming after a break."""
    printer = Printer(format, out)
    last = after
    try:
        with daemon_client(config, url, token) as client:
            if not follow:
                cursor: int | None = after
                while cursor is not None:
                    body = call(
                        client, "GET", "/api/events", params={**_params(server, cursor, types), "limit": 1000}
                    ).json()
                    for ev in body["events"]:
                        printer.show(ev)
                    cursor = body["next_after"]
                return
            failures = 0
            while True:
                try:
                    with client.stream(
                        "GET",
                        "/api/events/stream",
                        params=_params(server, last, types),
                        headers={"Last-Event-ID": str(last)},
                        timeout=httpx.Timeout(30, read=None),
                    ) as resp:
                        if resp.status_code >= 400:
                            resp.read()
                            refused(resp)
                        failures = 0
                        for ev in sse_events(resp.iter_lines()):
                            printer.show(ev)
                            last = ev["position"]
                except httpx.HTTPError as exc:
                    wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                    if failures == 0:
                        err.print(
                            f"[yellow]the stream broke ({exc or type(exc).__name__}); resuming after "
                            f"position {last}[/yellow]"
                        )
                    failures += 1
                    time.sleep(wait)
    except KeyboardInterrupt:
        return
