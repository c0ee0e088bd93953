"""The API's typed way to the engine: every route, the websocket and the event stream reach the
node through `node(request)` (engine.node.Node), never through an untyped `app.ctx` attribute."""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic

from wingman.engine.node import Node


def node_of(app: Sanic[Any, Any]) -> Node:
    node = app.ctx.node
    assert isinstance(node, Node), "the app was not made by api.app.create_app"
    return node


def node(request: Request) -> Node:
    return node_of(request.app)
