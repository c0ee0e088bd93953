"""mypy follows a power request from its route into the engine (issue 27): the route
(api/routes/power.py), the API's accessor (api/context.py), the façade (engine/node.py) and the
websocket's handlers are checked, the first three with --strict; what they import is read for
its types (follow_imports = "silent" in pyproject's [tool.mypy])."""

from __future__ import annotations

from pathlib import Path

from tests.support.mypy_run import mypy

ROOT = Path(__file__).resolve().parents[2]
STRICT = ["-m", "wingman.api.routes.power", "-m", "wingman.api.context", "-m", "wingman.engine.node"]
CHECKED = ["-m", "wingman.api.websocket.inbound", "-m", "wingman.api.routes.stream"]


def test_a_power_request_is_typed_from_the_route_to_the_engine() -> None:
    done = mypy("--strict", *STRICT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_ways_in_reach_the_node_typed() -> None:
    done = mypy(*CHECKED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_api_has_no_untyped_way_to_the_daemon() -> None:
    api = ROOT / "api"
    uses = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in api.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "ctx.daemon" in line or "daemon: Any" in line
    ]
    assert uses == []
