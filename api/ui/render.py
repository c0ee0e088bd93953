"""The operator page's templates (Jinja2, autoescaped: a server's name or console line is text,
never markup) and its static files, found beside this module in the installed package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic.response import HTTPResponse, html

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
VENDOR = STATIC / "vendor"  # htmx and its SSE extension, from npm at set-up (.ci/ui-assets.sh)

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(name: str, status: int = 200, **context: Any) -> HTTPResponse:
    context.setdefault("live", (VENDOR / "htmx.min.js").is_file() and (VENDOR / "sse.min.js").is_file())
    return html(templates.get_template(name).render(**context), status=status)


def fragment(name: str, **context: Any) -> str:
    return templates.get_template(name).render(**context)
