"""`wingman schedules UUID [list|add|delete]`: a server's scheduled power actions, through the
running daemon's API (`/api/servers/{uuid}/schedules`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wingman.api.cli.client import ConfigOption, TokenOption, UrlOption, call, daemon_client, err, out


def _step(text: str) -> dict[str, Any]:
    """`stop`, or `command:LINE`."""
    action, _, line = text.partition(":")
    return {"action": action, "command": line} if action == "command" else {"action": action}


def schedules(
    uuid: Annotated[str, typer.Argument(help="The server's uuid.")],
    verb: Annotated[str, typer.Argument(help="list, add or delete.")] = "list",
    cron: Annotated[str | None, typer.Option(help="add: a cron expression of five fields.")] = None,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="add: an IANA time zone.")] = "UTC",
    step: Annotated[
        list[str] | None,
        typer.Option(
            "--step", help="add: a step, in order (start, stop, restart, kill, command:LINE); repeat for a chain."
        ),
    ] = None,
    only_in: Annotated[
        list[str] | None, typer.Option("--only-in", help="add: run only in this state (repeat).")
    ] = None,
    quiet_minutes: Annotated[
        float, typer.Option(help="add: skip when an operator acted on the server this many minutes ago or less.")
    ] = 0,
    missed: Annotated[str, typer.Option(help="add: runs missed while the daemon was down: skip or run_once.")] = "skip",
    skip_next: Annotated[bool, typer.Option("--skip-next", help="add: skip the next run.")] = False,
    schedule_id: Annotated[
        str | None, typer.Option("--id", help="add: the id (replaces that schedule); delete: which.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="list: as JSON.")] = False,
    config: Path | None = ConfigOption,
    url: str | None = UrlOption,
    token: str | None = TokenOption,
) -> None:
    """A server's schedules: list them, add one, delete one."""
    path = f"/api/servers/{uuid}/schedules"
    with daemon_client(config, url, token) as client:
        if verb == "list":
            found = call(client, "GET", path).json()["schedules"]
            if as_json:
                out.print_json(json.dumps(found))
                return
            table = Table("id", "cron", "zone", "steps", "source", "next due")
            for s in found:
                steps = " → ".join(
                    st["action"] + (f" {st['command']!r}" if st.get("command") else "") for st in s["steps"]
                )
                table.add_row(s["id"], s["cron"], s["timezone"], steps, s["source"], s["next_due"] or "")
            out.print(table)
        elif verb == "add":
            if not cron or not step:
                err.print("[red]error:[/red] add needs --cron and at least one --step")
                raise typer.Exit(2)
            body: dict[str, Any] = {
                "cron": cron,
                "timezone": timezone,
                "steps": [_step(s) for s in step],
                "conditions": {"only_in_states": only_in or [], "not_within_minutes_of_operator": quiet_minutes},
                "missed": missed,
                "skip_next": skip_next,
            }
            if schedule_id:
                body["id"] = schedule_id
            added = call(client, "POST", path, json=body).json()
            out.print(f"schedule {added['id']} added; next due {added['next_due']}")
        elif verb == "delete":
            if not schedule_id:
                err.print("[red]error:[/red] delete needs --id")
                raise typer.Exit(2)
            call(client, "DELETE", path, params={"id": schedule_id})
            out.print(f"schedule {schedule_id} deleted")
        else:
            err.print(f"[red]error:[/red] unknown verb {verb!r}: list, add or delete")
            raise typer.Exit(2)
