"""A small real Panel for tests: a threaded HTTP server on a free port answering Wings' calls as a
Pterodactyl Panel's remote API does (`app/Http/Controllers/Api/Remote/` in pterodactyl/panel),
recording every request it gets, its `Authorization` header included.

    panel = PanelStandIn([definition(), definition()]).start()
    ...  # point a daemon's `remote` at panel.url
    panel.wait_for(lambda r: r.path == "/api/remote/servers/reset")
    panel.stop()

What it answers:
- `GET /api/remote/servers?page=N&per_page=M`: the servers in pages, as Laravel's paginator does
  (page 0 or a missing page is page 1; `meta.current_page`, `meta.last_page`, `meta.total`...);
  `page_bodies[N]` replaces page N's raw body, `meta_override` is merged into every page's meta;
- `GET /api/remote/servers/{uuid}`: the server's `settings` and `process_configuration`, or 404;
- `GET /api/remote/servers/{uuid}/install`: the egg's install script (`install_scripts[uuid]`, else
  the Panel's own defaults for an egg: alpine, `ash`, an empty script), or 404 for an unknown server;
- `POST /api/remote/servers/reset` and `POST /api/remote/servers/{uuid}/install`: 204;
- `answers[(method, path)] = (status, body)` replaces any of these (body: bytes, or JSON-able).

`stop()` then `start()` again reopens the same port: a Panel that was down and came back.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.daemon import free_port
from tests.support.waiting import eventually

SERVERS_PATH = "/api/remote/servers"
RESET_PATH = "/api/remote/servers/reset"


@dataclass
class PanelRequest:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    headers: dict[str, str]
    body: Any  # parsed JSON, the raw bytes when not JSON, None when empty
    at: float = field(default_factory=time.monotonic)


class PanelStandIn:
    def __init__(self, servers: list[dict] | None = None, port: int | None = None):
        # uuid -> the Panel's document for it, in listing order
        self.servers: dict[str, dict] = {s["settings"]["uuid"]: s for s in servers or []}
        self.page_bodies: dict[int, bytes] = {}
        self.meta_override: dict[str, Any] = {}
        self.answers: dict[tuple[str, str], tuple[int, Any]] = {}
        self.install_scripts: dict[str, dict] = {}  # uuid -> {container_image, entrypoint, script}
        self.requests: list[PanelRequest] = []
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> PanelStandIn:
        panel = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # http.server's spelling
                panel._handle(self, "GET")

            def do_POST(self):
                panel._handle(self, "POST")

            def log_message(self, *args):  # quiet: the requests are recorded instead
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="panel-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: the Panel is down (connections are refused) until `start()`."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> PanelStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what the tests read ---------------------------------------------------------------------

    def seen(self) -> list[tuple[str, str, dict]]:
        """What the Panel was asked, in short (for a failure's message)."""
        with self._lock:
            return [(r.method, r.path, r.query) for r in self.requests]

    def requests_to(self, path: str, method: str | None = None) -> list[PanelRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def wait_for(
        self, predicate: Callable[[PanelRequest], bool], timeout: float = 30, count: int = 1
    ) -> list[PanelRequest]:
        """The recorded requests matching `predicate`, once there are `count` of them."""

        def matching() -> list[PanelRequest]:
            with self._lock:
                return [r for r in self.requests if predicate(r)]

        return eventually(
            matching,
            timeout,
            lambda: f"{count} matching request(s) at the Panel; it got: {self.seen()}",
            interval=0.02,
            until=lambda found: len(found) >= count,
        )

    # -- answering ---------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        request = PanelRequest(
            method,
            parts.path,
            {k: v[-1] for k, v in parse_qs(parts.query).items()},
            h.headers.get("Authorization"),
            dict(h.headers.items()),
            body,
        )
        with self._lock:
            self.requests.append(request)
        status, payload = self._answer(request)
        data = payload if isinstance(payload, bytes) else (b"" if payload is None else json.dumps(payload).encode())
        h.send_response(status)
        if data:
            h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _answer(self, r: PanelRequest) -> tuple[int, Any]:
        if (r.method, r.path) in self.answers:
            return self.answers[(r.method, r.path)]
        if r.method == "GET" and r.path == SERVERS_PATH:
            return self._page(r.query)
        if r.method == "POST" and r.path == RESET_PATH:
            return 204, None
        rest = r.path[len(SERVERS_PATH) + 1 :] if r.path.startswith(SERVERS_PATH + "/") else ""
        if r.method == "GET" and rest and "/" not in rest:
            doc = self.servers.get(rest)
            if doc is None:
                return 404, {
                    "errors": [
                        {
                            "code": "NotFoundHttpException",
                            "status": "404",
                            "detail": "The requested resource could not be found on the server.",
                        }
                    ]
                }
            return 200, {"settings": doc.get("settings"), "process_configuration": doc.get("process_configuration")}
        if r.method == "POST" and rest.endswith("/install"):
            return 204, None
        if r.method == "GET" and rest.endswith("/install") and rest.count("/") == 1:
            uuid = rest.split("/")[0]
            if uuid not in self.servers:
                return 404, {
                    "errors": [
                        {
                            "code": "NotFoundHttpException",
                            "status": "404",
                            "detail": "The requested resource could not be found on the server.",
                        }
                    ]
                }
            # The Panel's ServerInstallController: the egg's copy_script_* (a new egg's defaults otherwise).
            return 200, self.install_scripts.get(
                uuid, {"container_image": "ghcr.io/pterodactyl/installers:alpine", "entrypoint": "ash", "script": ""}
            )
        return 404, {"errors": [{"code": "NotFoundHttpException", "status": "404", "detail": "No such route."}]}

    def _page(self, query: dict[str, str]) -> tuple[int, Any]:
        """Laravel's LengthAwarePaginator: page 0, a missing page or a bad one is page 1."""
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        try:
            per_page = max(1, int(query.get("per_page", "50")))
        except ValueError:
            per_page = 50
        if page in self.page_bodies:
            return 200, self.page_bodies[page]
        docs = list(self.servers.values())
        chunk = docs[(page - 1) * per_page : page * per_page]
        meta = {
            "current_page": page,
            "last_page": max(1, math.ceil(len(docs) / per_page)),
            "per_page": per_page,
            "total": len(docs),
            "from": (page - 1) * per_page + 1 if chunk else None,
            "to": (page - 1) * per_page + len(chunk) if chunk else None,
            **self.meta_override,
        }
        data = [
            {
                "uuid": d["settings"]["uuid"],
                "settings": d.get("settings"),
                "process_configuration": d.get("process_configuration"),
            }
            for d in chunk
        ]
        return 200, {"data": data, "links": {}, "meta": meta}


# -- a daemon with a Panel -------------------------------------------------------------------------


def with_panel(panel: PanelStandIn, per_page: int = 50, **extra) -> dict:
    """The `daemon_process` settings of a node whose Panel is `panel`."""
    # The tests' servers are local processes (tests.support.daemon.definition names no runtime): a
    # Panel's server that names none is a Docker one unless the node says otherwise.
    return {
        "remote": panel.url,
        "remote_query": {"boot_servers_per_page": per_page, "retry_max_seconds": 1},
        "remote_runtime": "process",
        **extra,
    }


def panel_events(daemon, kind: str) -> list[dict]:
    """The node's events of type `kind` (`GET /api/events`)."""
    with daemon.client() as c:
        return c.get("/api/events", params={"type": kind, "limit": 1000}).json()["events"]


def wait_events(daemon, kind: str, count: int = 1, timeout: float = 30) -> list[dict]:
    """The node's events of type `kind`, once there are `count` of them."""
    return eventually(
        lambda: panel_events(daemon, kind), timeout, f"{count} {kind} event(s)", until=lambda found: len(found) >= count
    )
