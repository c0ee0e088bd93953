"""`wingman configure`: fetch this node's config.yml from the Panel, as `wings configure` does.

The Panel serves a node's configuration on its *application* API
(`GET /api/application/nodes/{id}/configuration`, `app/Models/Node.php` getConfiguration), to an
administrator's API key: that is not the node's own token, so this talks HTTP itself rather than
through engine.remote's client of the Panel's remote API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml

from wingman.api.cli.client import ConfigOption, err, out
from wingman.api.cli.defaults import write_private_file
from wingman.engine.config import ConfigError, parse_config


def configure(
    panel_url: str = typer.Option(..., "--panel-url", "-p", help="The Panel's base URL."),
    token: str = typer.Option(
        ..., "--token", "-t", help="A Panel application API key (ptla_...) allowed to read nodes."
    ),
    node: str = typer.Option(..., "--node", "-n", help="The node's numeric id in the Panel."),
    config: Path | None = ConfigOption,
    override: bool = typer.Option(False, "--override", help="Replace an existing config file."),
):
    """Fetch this node's configuration from the Panel and write it (mode 0600) as the config file."""
    path = Path(config or os.environ.get("WINGMAN_CONFIG") or "wingman.yml")
    if not panel_url.startswith(("http://", "https://")) or not httpx.URL(panel_url).host:
        _bad_input(f"--panel-url must be the Panel's http:// or https:// URL, not {panel_url!r}")
    if not node.isdigit():
        _bad_input(f"--node must be the node's numeric id in the Panel, not {node!r}")
    if not token.strip():
        _bad_input("--token must be a Panel application API key")
    if path.exists() and not override:
        _bad_input(f"{path} already exists; pass --override to replace it")
    if not path.parent.is_dir():
        _bad_input(f"{path.parent} is not a folder")

    url = f"{panel_url.rstrip('/')}/api/application/nodes/{node}/configuration"
    document = _fetch(url, token)
    try:  # never write a file the daemon would then refuse
        parse_config(dict(document), path)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] the Panel's configuration cannot be used: {exc}")
        raise typer.Exit(1) from None
    try:
        write_private_file(path, yaml.safe_dump(document, sort_keys=False), replace=override)
    except FileExistsError:
        _bad_input(f"{path} already exists; pass --override to replace it")
    out.print(
        f"Wrote node {node}'s configuration (uuid {document.get('uuid')}) from {panel_url} to "
        f"[bold]{path}[/bold] (mode 0600). Run it with: wingman serve --config {path}",
        soft_wrap=True,
    )


def _fetch(url: str, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.pterodactyl.v1+json"}
    try:
        resp = httpx.get(url, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/red] cannot reach the Panel at {url}: {exc}")
        raise typer.Exit(2) from None
    if resp.status_code in (401, 403):
        _refused(resp, "the Panel refused the API key (it must be an application API key that may read nodes)")
    if resp.status_code == 404:
        _refused(resp, "the Panel has no such node")
    if resp.status_code != 200:
        _refused(resp, "the Panel could not give the node's configuration")
    try:
        document = resp.json()
    except ValueError:
        document = None
    if not isinstance(document, dict) or "token" not in document:
        err.print(
            f"[red]error:[/red] {url} did not answer with a node configuration (a JSON object with a token); "
            "is --panel-url the Panel's address?"
        )
        raise typer.Exit(1)
    return document


def _refused(resp: httpx.Response, what: str) -> None:
    err.print(f"[red]error ({resp.status_code}):[/red] {what}: {_panel_detail(resp)}")
    raise typer.Exit(1)


def _panel_detail(resp: httpx.Response) -> str:
    """The Panel's own words: `errors[].detail` in its JSON:API-like error body."""
    try:
        errors = resp.json().get("errors") or []
        details = [e.get("detail") for e in errors if isinstance(e, dict) and e.get("detail")]
    except (ValueError, AttributeError):
        details = []
    return "; ".join(details) or resp.text[:200] or resp.reason_phrase


def _bad_input(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
