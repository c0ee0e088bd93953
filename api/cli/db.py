"""`wingman db`: the event database itself: bring its schema up, move a node's log to PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from sqlalchemy.engine import make_url

from wingman.api.cli.client import ConfigOption, err, out, read_config
from wingman.api.cli.output import Stop, database_url

db_app = typer.Typer(help="The event database.", no_args_is_help=True)

# migrate-to's exit codes beside 0: 1 the copy failed (the target unreachable, a write refused),
# 2 bad input, 3 the target holds another history (nothing was written).
EXIT_FAILED, EXIT_USAGE, EXIT_OTHER_HISTORY = 1, 2, 3


@db_app.command("upgrade")
def db_upgrade(config: Path | None = ConfigOption) -> None:
    """Create or migrate the event database's schema."""
    from wingman.engine.store.database import create_engine, upgrade

    cfg = read_config(config)
    cfg.root_directory.mkdir(parents=True, exist_ok=True)

    async def run() -> str | None:
        engine = create_engine(cfg.database_url)
        try:
            return await upgrade(engine)
        finally:
            await engine.dispose()

    try:
        revision = asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - what the databases said, in one line: nothing was half-done
        err.print(f"[red]error:[/red] could not upgrade {cfg.database_url}: {exc}")
        raise typer.Exit(1) from None
    out.print(f"database at revision [bold]{revision}[/bold]")


@db_app.command("migrate-to")
def migrate_to(
    url: Annotated[str, typer.Argument(help="The PostgreSQL database, e.g. postgresql://wingman@db1,db2/wingman.")],
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="The SQLite file (or URL) to copy; default: the config's.")
    ] = None,
    config: Path | None = ConfigOption,
    batch: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 20_000,
) -> None:
    """Copy this node's SQLite event log into PostgreSQL: every event with its id, version and hash,
    and the signed checkpoints. Run again after an interruption, it goes on where it stopped; after
    it finished, it copies nothing. A target that holds another history is refused (exit 3).
    Stop the daemon first; then point database.url at URL and start it."""
    from wingman.engine.store.migrate_to import HistoryDiffers, MigrationError
    from wingman.engine.store.migrate_to import migrate_to as copy_log

    try:
        source, target = database_url(database, config), database_url(url, None)
    except Stop as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    bar = Progress(
        TextColumn("copying events"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    task = bar.add_task("events", total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    try:
        with bar:
            result = asyncio.run(copy_log(source, target, batch=batch, progress=progress))
    except HistoryDiffers as exc:
        err.print(
            f"[bold red]refused:[/] {escape(str(exc))}. The target holds another history; nothing was written "
            "(migrate into an empty database, or into the one an earlier run of this command filled).",
            highlight=False,
        )
        raise typer.Exit(EXIT_OTHER_HISTORY) from None
    except MigrationError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # noqa: BLE001 - what the databases said, in one line: the run can be resumed
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        err.print(
            f"[bold red]error:[/] the copy stopped: {escape(reason[0] if reason else type(exc).__name__)} "
            "(what was copied stays; run the command again to go on)",
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILED) from None
    rate = f" ({result.events_per_second:,.0f} events/s)" if result.copied else ""
    out.print(
        f"{result.source_events} events in the source: {result.already_there} already in the target, "
        f"{result.copied} copied in {result.seconds:.1f} s{rate}; {result.checkpoints_copied} checkpoints copied.",
        highlight=False,
    )
    if result.target_ahead:
        out.print(f"The target holds {result.target_ahead} more events after the source's last: a daemon ran on it.")
    shown = make_url(target).render_as_string(hide_password=True)  # the password stays off the screen
    out.print(f"Now set database.url to {escape(shown)} in the daemon's config and start it.", highlight=False)
