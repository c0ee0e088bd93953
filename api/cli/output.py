"""Plumbing of `wingman audit`: opening the database an auditor names, exit codes and clear
errors, and printing rows as a paged table on a terminal or as clean machine output when piped."""

from __future__ import annotations

import asyncio
import csv
import inspect
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.config import ConfigError, load_config
from wingman.engine.servers.fold import LogError
from wingman.engine.store.database import create_engine
from wingman.engine.store.points import BadPoint, Point, parse_point, parse_time
from wingman.engine.store.queries import stream_exists

EXIT_FINDINGS, EXIT_USAGE = 1, 2
err = Console(stderr=True, soft_wrap=True)


class Fmt(StrEnum):
    auto = "auto"
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


class ReportFmt(StrEnum):
    """A state or a report: one document, so no CSV."""

    auto = "auto"
    table = "table"
    json = "json"
    ndjson = "ndjson"


class ExportFmt(StrEnum):
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
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if url.startswith(plain):
                url = driver + url[len(plain) :]
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
        err.print(
            f"[bold red]error:[/] the log cannot be replayed here: {escape(str(exc))} "
            f"(run `wingman audit verify {exc.event.stream_id}`)",
            highlight=False,
        )
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


# -- help ------------------------------------------------------------------------------------------


def tidy_help(app: typer.Typer) -> typer.Typer:
    """Each paragraph of each command's help on one line, for the help to wrap it at the terminal's
    width: the docstrings' own line breaks would otherwise show (typer keeps them), in `--help` and
    in its group's command list. Lines that start a list item (`- `) keep their break."""

    def tidy(text: str) -> str:
        paragraphs = []
        for para in inspect.cleandoc(text).split("\n\n"):
            lines: list[str] = []
            for line in para.splitlines():
                if lines and not line.lstrip().startswith(("- ", "* ", "\b")):
                    lines[-1] += " " + line.strip()
                else:
                    lines.append(line.rstrip())
            paragraphs.append("\n".join(lines))
        return "\n\n".join(paragraphs)

    for info in app.registered_commands:
        doc = info.help or (inspect.getdoc(info.callback) if info.callback else None)
        if doc:
            info.help = tidy(doc)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            tidy_help(group.typer_instance)
    return app


# -- output ----------------------------------------------------------------------------------------


def chosen(fmt: Fmt | ReportFmt) -> Fmt:
    if fmt.value == "auto":
        return Fmt.table if sys.stdout.isatty() else Fmt.ndjson
    return Fmt(fmt.value)


async def emit(
    rows: AsyncIterator[dict[str, Any]],
    fmt: Fmt,
    columns: list[tuple[str, str]],
    title: str,
    nowrap: tuple[str, ...] = (),
    pager: bool = False,
) -> int:
    """Write rows as a table (terminal) or as clean machine output, streaming.

    The columns in `nowrap` are read whole: they are never wrapped nor cut. The others are text,
    wrapped at word boundaries. When the terminal is too narrow for a table whose text columns are
    readable, each row is its whole columns on one line and its text below, indented. The table is
    paged (`less -FRX`, or $PAGER) only when asked (`pager`), and only on a terminal."""
    out, count = sys.stdout, 0
    if fmt == Fmt.table:
        console = Console()
        paging = None
        if pager and console.is_terminal:
            # Like git: quit when it fits one screen, keep colours, leave the screen as it was.
            os.environ.setdefault("LESS", "FRX")
            paging = console.pager(styles=True)
            paging.__enter__()
        try:
            chunk: list[list[str]] = []
            first = True

            def flush() -> None:
                nonlocal first
                if chunk:
                    _print_rows(console, chunk, columns, title if first else None, nowrap)
                    first = False
                    chunk.clear()

            async for row in rows:
                chunk.append(["" if row.get(k) is None else str(row[k]) for k, _ in columns])
                count += 1
                if len(chunk) >= 200:  # one table per 200 rows: flat memory
                    flush()
            flush()
            if count == 0:
                console.print(f"{escape(title)}: nothing to show")
        finally:
            if paging:
                paging.__exit__(None, None, None)
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
            writer.writerow(
                [
                    "" if row.get(k) is None else (json.dumps(row[k]) if isinstance(row[k], (dict, list)) else row[k])
                    for k, _ in columns
                ]
            )
        count += 1
    if fmt == Fmt.json:
        out.write("\n]\n")
    out.flush()
    return count


TEXT_MIN = 24  # a text column narrower than this is not worth reading in a table


def _print_rows(
    console: Console, cells: list[list[str]], columns: list[tuple[str, str]], title: str | None, nowrap: tuple[str, ...]
) -> None:
    """Rows as a table when the terminal is wide enough, else one block per row (see `emit`)."""
    whole = [i for i, (k, _) in enumerate(columns) if k in nowrap]
    text = [i for i, (k, _) in enumerate(columns) if k not in nowrap]

    def widest(i: int, words: bool = False) -> int:
        values = [columns[i][1]] + [r[i] for r in cells]
        if words:
            values = [w for v in values for w in v.split()] or [""]
        return max(cell_len(v) for v in values)

    need = {i: widest(i) for i in whole} | {i: max(TEXT_MIN, widest(i, words=True)) for i in text}
    # a heavy-head table: a border before, between and after the columns, one space of padding each side
    if sum(need.values()) + 3 * len(columns) + 1 <= console.width:
        table = Table(title=escape(title) if title else None)
        for i, (_key, label) in enumerate(columns):
            if i in whole:
                table.add_column(label, no_wrap=True, min_width=need[i])
            else:
                table.add_column(label, overflow="fold", min_width=need[i], ratio=1)
        for r in cells:
            table.add_row(*[escape(c) for c in r])
        console.print(table)
        return
    if title:
        console.print(Text(title, style="bold"))
    widths = {i: widest(i) for i in whole}

    def line(values: list[str]) -> str:
        return "  ".join(v + " " * (widths[i] - cell_len(v)) for i, v in zip(whole, values, strict=False)).rstrip()

    console.print(Text(line([columns[i][1] for i in whole]), style="bold"), no_wrap=True, overflow="ignore")
    for r in cells:
        console.print(Text(line([r[i] for i in whole])), no_wrap=True, overflow="ignore")
        for n, i in enumerate(text):
            if r[i]:
                words = r[i] if n == 0 else f"{columns[i][1]}: {r[i]}"
                console.print(Padding(Text(words), (0, 0, 0, 4), expand=False))


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
