"""Plumbing of `wingman audit`: opening the database an auditor names, exit codes and clear
errors, and printing rows as a paged table on a terminal or as clean machine output when piped."""
from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.store.points import BadPoint, Point, parse_point, parse_time
from engine.store.queries import stream_exists
from engine.config import ConfigError, load_config
from engine.store.database import create_engine
from engine.servers.fold import LogError

EXIT_FINDINGS, EXIT_USAGE = 1, 2
err = Console(stderr=True, soft_wrap=True)


class Fmt(str, Enum):
    auto = "auto"
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


class ExportFmt(str, Enum):
    ndjson = "ndjson"
    csv = "csv"


class Stop(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# -- the database ----------------------------------------------------------------------------------

def database_url(database: str | None, config: Path | None) -> str:
    """The URL to read: --database (a URL or a file path), else the config's database."""
    if database:
        if "://" not in database:
            path = Path(database).expanduser()
            if not path.is_file():
                raise Stop(f"database file {path} does not exist")
            return f"sqlite+aiosqlite:///{path.resolve()}"
        url = database
        for plain, driver in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+asyncpg://"),
                              ("postgres://", "postgresql+asyncpg://")):
            if url.startswith(plain):
                url = driver + url[len(plain):]
    else:
        try:
            url = load_config(config).database_url
        except ConfigError as exc:
            raise Stop(f"{exc} (or name the database with --database)") from None
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001
        raise Stop(f"{url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise Stop("name a database file, not an in-memory database")
        if not Path(parsed.database).is_file():
            raise Stop(f"database file {parsed.database} does not exist")
    return url


async def open_database(url: str) -> AsyncEngine:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            has_events = await conn.run_sync(lambda c: sa_inspect(c).has_table("events"))
    except Exception as exc:  # noqa: BLE001
        await engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise Stop(f"cannot read the database {make_url(url).render_as_string(hide_password=True)}: {reason}") from None
    if not has_events:
        await engine.dispose()
        raise Stop("the database has no events table: it is not a wingman event store")
    return engine


def run(database: str | None, config: Path | None, job: Callable[[AsyncEngine], Awaitable[int]]) -> None:
    """Open the database, run the job, close, and exit with its code (or a clear error)."""
    async def main() -> int:
        engine = await open_database(database_url(database, config))
        try:
            return await job(engine)
        finally:
            await engine.dispose()

    try:
        code = asyncio.run(main())
    except Stop as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.code) from None
    except LogError as exc:
        err.print(f"[bold red]error:[/] the log cannot be replayed here: {escape(str(exc))} "
                  f"(run `wingman audit verify {exc.event.stream_id}`)", highlight=False)
        raise typer.Exit(EXIT_FINDINGS) from None
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    raise typer.Exit(code)


def point_of(text: str | None, name: str) -> Point:
    try:
        return parse_point(text, name)
    except BadPoint as exc:
        raise Stop(str(exc)) from None


def time_of(text: str | None, name: str):
    try:
        return parse_time(text, name) if text else None
    except BadPoint as exc:
        raise Stop(str(exc)) from None


async def known(engine: AsyncEngine, server: str) -> str:
    if not await stream_exists(engine, server):
        raise Stop(f"no server {server} in this log")
    return server


# -- output ----------------------------------------------------------------------------------------


def chosen(fmt: Fmt) -> Fmt:
    return (Fmt.table if sys.stdout.isatty() else Fmt.ndjson) if fmt == Fmt.auto else fmt


async def emit(rows: AsyncIterator[dict[str, Any]], fmt: Fmt, columns: list[tuple[str, str]], title: str,
               nowrap: tuple[str, ...] = ()) -> int:
    """Write rows as a paged table (terminal) or as clean machine output, streaming."""
    out, count = sys.stdout, 0
    if fmt == Fmt.table:
        console = Console()
        pager = None
        if console.is_terminal:
            # Like git: quit when it fits one screen, keep colours, leave the screen as it was.
            os.environ.setdefault("LESS", "FRX")
            pager = console.pager(styles=True)
        if pager:
            pager.__enter__()
        try:
            table = None
            async for row in rows:
                if table is None or table.row_count >= 200:  # one table per 200 rows: flat memory
                    if table is not None:
                        console.print(table)
                    table = Table(title=title if table is None else None, show_lines=False)
                    for key, label in columns:
                        table.add_column(label, overflow="fold", no_wrap=key in nowrap)
                table.add_row(*["" if row.get(k) is None else escape(str(row[k])) for k, _ in columns])
                count += 1
            if table is not None:
                console.print(table)
            else:
                console.print(f"{title}: nothing to show")
        finally:
            if pager:
                pager.__exit__(None, None, None)
        return count
    writer = csv.writer(out, lineterminator="\n") if fmt == Fmt.csv else None
    if writer:
        writer.writerow([k for k, _ in columns])
    if fmt == Fmt.json:
        out.write("[")
    async for row in rows:
        if fmt == Fmt.json:
            out.write(("," if count else "") + "\n" + json.dumps(row, ensure_ascii=False))
        elif fmt == Fmt.ndjson:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer.writerow(["" if row.get(k) is None else (json.dumps(row[k]) if isinstance(row[k], (dict, list))
                                                             else row[k]) for k, _ in columns])
        count += 1
    if fmt == Fmt.json:
        out.write("\n]\n")
    out.flush()
    return count


def short_time(text: str | None) -> str | None:
    """`2026-01-01T00:00:07.250000Z` as `2026-01-01 00:00:07` for tables (their header says UTC)."""
    return text.replace("T", " ")[:19] if text and text.endswith("Z") else text


def duration(seconds: float) -> str:
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + (f"{m}m " if d or h or m else "") + f"{s}s"


# -- commands --------------------------------------------------------------------------------------
