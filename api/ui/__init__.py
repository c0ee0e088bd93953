"""The operator page at /ui (docs/ui.md): server-rendered with Jinja2, kept live with htmx and its
SSE extension (installed from npm at set-up: .ci/ui-assets.sh), signed in with a session cookie.

- `session`: the signed cookie and the CSRF check;
- `pages`: the pages and the power buttons;
- `live`: /ui/events, the stream the pages listen to;
- `render`: the templates and the static files.
"""

from __future__ import annotations

from sanic import Sanic

from wingman.api.ui import live, pages
from wingman.api.ui.render import STATIC


def install(app: Sanic) -> None:
    app.blueprint(pages.bp)
    app.blueprint(live.bp)
    app.static("/ui/static", STATIC, name="ui_static")
