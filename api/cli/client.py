"""What the commands that talk to a running daemon share: its address and token (from the
config or the command line), one HTTP client, and errors said whole on one line with an exit code
(1: the daemon refused, 2: it cannot be reached or the input is wrong)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import typer
from rich.console import Console

from wingman.engine.config import ConfigError, DaemonConfig, load_config

# Text wraps to a terminal's width; written to a file or a pipe (the daemon's start-up into a log,
# say), each line stays whole. Tables are drawn to the width either way.
out = Console(soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=True)  # errors whole on one line: scripts grep them

ConfigOption = typer.Option(None, "--config", "-c", help="Config file (default: $WINGMAN_CONFIG or ./wingman.yml).")


def read_config(path: Path | None) -> DaemonConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def daemon_client(config: Path | None, url: str | None, token: str | None) -> httpx.Client:
    if url and token:
        base, secret = url, token
    else:
        cfg = read_config(config)
        base = url or f"http://{cfg.api.host}:{cfg.api.port}"
        secret = token or cfg.token
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {secret}", "X-Wingman-Channel": "cli"}, timeout=30
    )


def call(client: httpx.Client, method: str, path: str, **kw) -> httpx.Response:
    try:
        resp = client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/red] cannot reach the daemon at {client.base_url}: {exc}")
        raise typer.Exit(2) from None
    if resp.status_code >= 400:
        refused(resp)
    return resp


def refused(resp: httpx.Response) -> None:
    """The daemon said no: its error, whole, and exit 1."""
    try:
        message = resp.json().get("error", resp.text)
    except ValueError:
        message = resp.text
    err.print(f"[red]error ({resp.status_code}):[/red] {message}")
    raise typer.Exit(1)


UrlOption = typer.Option(None, "--url", envvar="WINGMAN_URL", help="Daemon URL (default: from the config).")
TokenOption = typer.Option(None, "--token", envvar="WINGMAN_TOKEN", help="Node token (default: from the config).")
