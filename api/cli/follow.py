"""Waiting for a power operation's outcome, with its progress shown meanwhile: `wingman power ...
--follow` and `wingman operation ID --follow`.

A start of a real game server takes 30-60 s, a stop up to its stop timeout: while waiting, the
server's state changes (as committed), the daemon's notes (pre-boot steps, "stop timed out") and the
console's last line are shown with the time elapsed, from the server's websocket feed
(api.cli.feed); the outcome comes from `GET /api/operations/{id}`. On a terminal that is a rich
status line under the lines already printed; piped, plain lines (a state change or a note at once,
the console's last line at most every PIPED_CONSOLE_SECONDS). Ctrl-C leaves the operation running
and says how to follow it again (exit 130).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

import httpx
import typer
from rich.markup import escape
from rich.text import Text
from websockets.exceptions import ConnectionClosed

from wingman.api.cli.client import ConfigOption, TokenOption, UrlOption, call, daemon_client, out
from wingman.api.cli.feed import FeedError, ServerFeed, address, note_text, printable
from wingman.engine.servers.operations import FINISHED_STATUSES

POLL_SECONDS = 0.25
PIPED_CONSOLE_SECONDS = 5.0
SETTLE_SECONDS = 2.0  # after the outcome, how long the feed may take to deliver the state it led to


def open_feed(client: httpx.Client, server: str) -> ServerFeed | None:
    """The server's feed, or None when it cannot be had (the outcome is still followed, quietly)."""
    try:
        return ServerFeed(*address(client), server)
    except FeedError:
        return None


def _read(feed: ServerFeed, into: queue.Queue) -> None:
    try:
        for event, args in feed.frames():
            if event == "status" and args:
                into.put(("state", args[0]))
            elif event in ("console output", "install output") and args:
                note = note_text(args[0])
                into.put(("note", note) if note is not None else ("line", args[0]))
    except (ConnectionClosed, OSError, ValueError):
        pass


def follow_operation(
    client: httpx.Client, op: dict, feed: ServerFeed | None, hint: str, started: float | None = None
) -> dict:
    """Wait for `op`'s outcome showing progress; returns the finished operation. `hint` is the
    command that follows it again (said on Ctrl-C)."""
    started = time.monotonic() if started is None else started
    events: queue.Queue = queue.Queue()
    if feed is not None:
        threading.Thread(target=_read, args=(feed, events), daemon=True, name="feed").start()
    tty = out.is_terminal
    state = feed.state if feed else None
    last_line = ""
    shown_line = ""
    next_console = started + PIPED_CONSOLE_SECONDS

    def elapsed() -> float:
        return time.monotonic() - started

    def emit(kind: str, text: str) -> None:
        if tty:
            out.print(
                f"[dim]{elapsed():6.1f}s[/dim] "
                + (
                    "state [bold cyan]" + escape(text) + "[/bold cyan]"
                    if kind == "state"
                    else "[yellow]" + escape(text) + "[/yellow]"
                ),
                soft_wrap=True,
                highlight=False,
            )
        else:
            sys.stdout.write(f"[{elapsed():6.1f}s] {'state: ' if kind == 'state' else 'daemon: '}{text}\n")
            sys.stdout.flush()

    def drain(wait: float) -> None:
        nonlocal state, last_line
        deadline = time.monotonic() + wait
        while True:
            try:
                kind, text = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if kind == "state":
                state = text
                emit("state", text)
            elif kind == "note":
                emit("note", printable(text, False))
            else:
                last_line = printable(text, False)

    def status_text() -> Text:
        waiting = " (queued: waiting for the power lock)" if op["status"] == "queued" else ""
        head = f"{op['action']}{waiting}" + (f" · server {state}" if state else "") + f" · {elapsed():.0f}s"
        text = Text(head, style="bold")
        if last_line:
            room = max(10, out.width - len(head) - 8)
            text.append("  " + (last_line if len(last_line) <= room else last_line[: room - 1] + "…"), style="dim")
        return text

    try:
        status = out.status(status_text(), spinner="dots") if tty else None
        if status:
            status.start()
        try:
            next_poll = time.monotonic()
            while op["status"] not in FINISHED_STATUSES:
                drain(max(0.0, next_poll - time.monotonic()))
                if time.monotonic() >= next_poll:
                    op = call(client, "GET", f"/api/operations/{op['id']}").json()
                    next_poll = time.monotonic() + POLL_SECONDS
                if status:
                    status.update(status_text())
                elif last_line != shown_line and time.monotonic() >= next_console:
                    sys.stdout.write(f"[{elapsed():6.1f}s] console: {last_line}\n")
                    sys.stdout.flush()
                    shown_line, next_console = last_line, time.monotonic() + PIPED_CONSOLE_SECONDS
            if feed is not None:  # the state the outcome left, as the feed tells it (committed before it)
                now = call(client, "GET", f"/api/servers/{op['server']}").json().get("state")
                settle = time.monotonic() + SETTLE_SECONDS
                drain(0)
                while state != now and time.monotonic() < settle:
                    drain(0.05)
        finally:
            if status:
                status.stop()
    except KeyboardInterrupt:
        out.print(
            f"\n{escape(op['action'])} goes on (operation {op['id']}); follow it with: [bold]{escape(hint)}[/bold]",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(130) from None
    finally:
        if feed is not None:
            feed.close()
    return op


def report(op: dict) -> None:
    """The outcome, and the exit code it means (0 succeeded, 1 otherwise)."""
    reason = f" ({op['reason']})" if op.get("reason") else ""
    colour = "green" if op["status"] == "succeeded" else "red"
    out.print(f"[{colour}]{op['action']} {op['status']}[/{colour}]{escape(reason)}", soft_wrap=True)
    raise typer.Exit(0 if op["status"] == "succeeded" else 1)


def follow_hint(operation_id: str, url: str | None, config: Path | None) -> str:
    where = (f" --url {url}" if url else "") + (f" --config {config}" if config else "")
    return f"wingman operation {operation_id} --follow{where}"


def operation(
    operation_id: str = typer.Argument(..., help="Operation id (as `wingman power` prints it)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Wait for the outcome, showing progress."),
    config: Path | None = ConfigOption,
    url: str | None = UrlOption,
    token: str | None = TokenOption,
):
    """Show a power operation; with --follow, wait for its outcome (exit 0 when it succeeded)."""
    with daemon_client(config, url, token) as client:
        op = call(client, "GET", f"/api/operations/{operation_id}").json()
        if not follow and op["status"] not in FINISHED_STATUSES:
            out.print(f"operation [bold]{op['id']}[/bold]: {op['action']} {op['status']}")
            return
        if op["status"] not in FINISHED_STATUSES:
            out.print(f"operation [bold]{op['id']}[/bold]: {op['action']} {op['status']}")
            op = follow_operation(client, op, open_feed(client, op["server"]), follow_hint(op["id"], url, config))
    report(op)
