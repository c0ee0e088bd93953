"""The `wingman` command: run the daemon, and talk to it (or to its database) from a shell."""

from __future__ import annotations

import json as jsonlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import typer
from rich.markup import escape
from rich.table import Column, Table

from wingman.api.cli.audit import audit_app
from wingman.api.cli.client import (
    ConfigOption,
    TokenOption,
    UrlOption,
    call,
    daemon_client,
    err,
    out,
    read_config,
)
from wingman.api.cli.configure import configure as configure_command
from wingman.api.cli.console import console as console_command
from wingman.api.cli.console import logs as logs_command
from wingman.api.cli.db import db_app
from wingman.api.cli.diagram import diagram_app
from wingman.api.cli.events import events as events_command
from wingman.api.cli.follow import follow_hint, follow_operation, open_feed, report
from wingman.api.cli.follow import operation as operation_command
from wingman.api.cli.output import tidy_help
from wingman.api.cli.replay import replay as replay_command
from wingman.api.cli.schedules import schedules as schedules_command
from wingman.engine.checkpoints.keys import KeyFileError
from wingman.engine.statechart import StatechartError

if TYPE_CHECKING:  # the daemon is imported when it serves, not for every command
    from wingman.engine.daemon import Daemon

app = typer.Typer(help="wingman: an event-sourced power daemon for game servers.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def serve(
    config: Path | None = ConfigOption,
    port: int | None = typer.Option(None, help="Override api.port."),
    accept_chart_change: bool = typer.Option(
        False,
        "--accept-chart-change",
        help="Start with a changed statechart even though it lacks the state of a live server; "
        "the decision is recorded in the log (docs/statechart.md).",
    ),
):
    """Run the daemon (one process). Writes a default config with a demo server on first run."""
    from wingman.api.app import PROTOCOL, create_app
    from wingman.api.cli.defaults import place_demo_script, write_default_config
    from wingman.api.context import node_of
    from wingman.api.logging import setup_logging
    from wingman.engine.fleet.node_lock import node_taken

    # Whatever the daemon creates (its database, logs, snapshots) is its own alone: its servers run
    # as other users (engine.private_files), and their own files get the same mask from it.
    os.umask(0o077)
    path = Path(config or os.environ.get("WINGMAN_CONFIG") or "wingman.yml")
    demo_written = None
    if not path.exists():
        try:
            token, demo = write_default_config(path, port or 8080)
        except FileExistsError:  # another first run wrote it meanwhile: that one is the config
            pass
        else:
            demo_written = demo
            out.print(f"Wrote a default config to [bold]{path}[/bold] with a demo server [bold]{demo}[/bold].")
            out.print(f"Node token (shown once; it is in the file): [bold]{token}[/bold]")
    cfg = read_config(path)
    if demo_written:
        place_demo_script(cfg.data_directory / demo_written)
    if port is not None:
        cfg.api.port = port
    served = served_certificate(cfg)  # before anything is created: a bad certificate changes nothing
    taken = node_taken(cfg.database_url, cfg.node_id)  # the daemon takes it at start; this says it plainly
    if taken is not None:
        err.print(f"[red]error:[/red] {taken}", soft_wrap=True)
        raise typer.Exit(2)
    refused_chart(cfg, accept_chart_change)
    setup_logging()
    if cfg.ignored_keys:
        structlog.get_logger("wingman.config").info(
            "config keys ignored: Wings' keys that wingman does not use", keys=cfg.ignored_keys, file=str(path)
        )
    try:
        sanic_app = create_app(cfg)
    except (StatechartError, KeyFileError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    scheme = "https" if served else "http"
    out.print(f"wingman listening on {scheme}://{cfg.api.host}:{cfg.api.port} (database: {cfg.database_url})")
    if served:
        from wingman.api.tls import describe, reload_on_hangup

        out.print(
            f"TLS with {cfg.ssl_cert_path} ({describe(served.certificate)}); send SIGHUP to load a renewed certificate",
            soft_wrap=True,
        )
        sanic_app.before_server_start(lambda _app: reload_on_hangup(served))
    node_of(sanic_app).daemon.accept_chart_change = accept_chart_change
    checkpointer = node_of(sanic_app).checkpointer
    made = " (new key, created now)" if checkpointer.key_created else ""
    out.print(
        f"checkpoints signed with Ed25519 public key [bold]{checkpointer.public_key}[/bold]{made}: "
        f"give it to auditors (wingman audit verify --key ...); key file {cfg.checkpoint_key_path}, "
        f"checkpoint file {cfg.checkpoint_file_path}",
        soft_wrap=True,
    )
    sanic_app.run(
        host=cfg.api.host,
        port=cfg.api.port,
        single_process=True,
        access_log=False,
        motd=False,
        protocol=PROTOCOL,
        ssl=served.context if served else None,
    )
    say_what_is_left(node_of(sanic_app).daemon)


def refused_chart(cfg, accepted: bool) -> None:
    """The configured statechart checked before anything is created: one that does not load, or
    that this node's history refuses (engine.charts.adoption), ends the command with the reason
    and the report (exit 2). The daemon's start checks again, under its node lock, and records."""
    from wingman.engine.charts.adoption import refusal_before_start
    from wingman.engine.statechart import read_statechart

    try:
        refusal = refusal_before_start(cfg.database_url, read_statechart(cfg.statechart_path), cfg.node_id, accepted)
    except StatechartError as exc:
        refusal = str(exc)
    if refusal:
        err.print(f"[red]error:[/red] {escape(refusal)}", soft_wrap=True, highlight=False)
        raise typer.Exit(2)


def say_what_is_left(daemon: Daemon) -> None:
    """On the way out (SIGINT or SIGTERM): the game servers the daemon leaves running, which it
    does on purpose (their runtimes outlive it), so an operator is not left wondering."""
    left = len(daemon.processes.running())  # after its stop: only the servers it did not stop
    if left:
        servers = "1 game server" if left == 1 else f"{left} game servers"
        out.print(f"wingman stopped; {servers} left running: the next start adopts them", soft_wrap=True)
    else:
        out.print("wingman stopped; no game server was running", soft_wrap=True)


def served_certificate(cfg):
    """The certificate to serve with, when `api.ssl.enabled`; a missing, unreadable or mismatched
    certificate or key ends the command with a clear message (exit 2)."""
    if not cfg.api.ssl.enabled:
        return None
    from wingman.api.tls import ServedCertificate, TLSError

    try:
        return ServedCertificate(cfg.ssl_cert_path, cfg.ssl_key_path)
    except TLSError as exc:
        err.print(f"[red]error:[/red] {cfg.source}: {exc}")
        raise typer.Exit(2) from None


@app.command()
def servers(
    config: Path | None = ConfigOption,
    url: str | None = UrlOption,
    token: str | None = TokenOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """List the servers on the node with their state."""
    with daemon_client(config, url, token) as client:
        data = call(client, "GET", "/api/servers").json()
    if as_json:
        out.print_json(jsonlib.dumps(data))
        return
    out.print(servers_table(data, out.width))


# The servers table: the uuid (what every other command takes) and the state (what an operator
# looks for) are never cut; the other columns give way, the least useful first, when the
# terminal is narrow.
SERVER_COLUMNS = ("uuid", "state", "name", "runtime", "suspended", "version")
GIVE_WAY = ("version", "suspended", "runtime", "name")  # dropped in this order (a name shrinks first)


def servers_table(data: list[dict], width: int) -> Table:
    rows = []
    for s in data:
        settings = (s.get("configuration") or {}).get("settings", {})
        rows.append(
            {
                "uuid": s["uuid"],
                "state": s["state"],
                "name": (settings.get("meta") or {}).get("name") or "",
                "runtime": settings.get("runtime", ""),
                "suspended": "yes" if s["is_suspended"] else "no",
                "version": str(s["version"]),
            }
        )
    shown = list(SERVER_COLUMNS)

    def needed(cols: list[str]) -> int:  # each column: its widest cell and 3 of border and padding
        widest = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in cols}
        widest["name"] = min(widest.get("name", 0), 8)  # the name may shrink to 8 with an ellipsis
        return sum(widest[c] + 3 for c in cols) + 1

    for column in GIVE_WAY:
        if needed(shown) <= width:
            break
        shown.remove(column)
    table = Table(
        *[
            Column(c, no_wrap=True, min_width=max([len(c), *(len(r[c]) for r in rows)]))
            if c in ("uuid", "state")
            else Column(c, no_wrap=True, overflow="ellipsis")
            for c in shown
        ]
    )
    for r in rows:
        table.add_row(*[r[c] for c in shown])
    return table


@app.command()
def power(
    server: str = typer.Argument(..., help="Server uuid."),
    action: str = typer.Argument(..., help="start | stop | restart | kill"),
    wait: int | None = typer.Option(None, "--wait", help="Seconds to wait for the power lock (0..300)."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Wait for the outcome, showing progress (Ctrl-C stops only the waiting)."
    ),
    config: Path | None = ConfigOption,
    url: str | None = UrlOption,
    token: str | None = TokenOption,
):
    """Ask the daemon to start, stop, restart or kill a server."""
    body: dict = {"action": action}
    if wait is not None:
        body["wait_seconds"] = wait
    with daemon_client(config, url, token) as client:
        # The feed first, so no state change between the request and the follow is missed.
        feed = open_feed(client, server) if follow else None
        started = time.monotonic()
        try:
            op = call(client, "POST", f"/api/servers/{server}/power", json=body).json()
        except BaseException:
            if feed is not None:
                feed.close()
            raise
        out.print(f"operation [bold]{op['id']}[/bold]: {op['action']} {op['status']}")
        if not follow:
            return
        op = follow_operation(client, op, feed, follow_hint(op["id"], url, config), started)
    report(op)


@app.command("rotate-key")
def rotate_key(config: Path | None = ConfigOption, url: str | None = UrlOption, token: str | None = TokenOption):
    """Rotate the running daemon's checkpoint key: a checkpoint signed with the old key announces
    the new one, and the checkpoints after it are signed with the new key."""
    with daemon_client(config, url, token) as client:
        body = call(client, "POST", "/api/audit/key/rotate").json()
    out.print(
        f"old key {body['old_key']}\nnew key [bold]{body['new_key']}[/bold] (announced by a checkpoint "
        "signed with the old one)",
        soft_wrap=True,
    )


audit_app.command("replay")(replay_command)
app.add_typer(audit_app, name="audit")
app.add_typer(diagram_app, name="diagram")
app.command("events")(events_command)
app.command("schedules")(schedules_command)  # issue 31: scheduled power actions
app.command("configure")(configure_command)
app.command("console")(console_command)
app.command("logs")(logs_command)
app.command("operation")(operation_command)
tidy_help(app)  # each paragraph of every command's help on one line, wrapped at the terminal's width


def main() -> None:
    app()


if __name__ == "__main__":
    main()
