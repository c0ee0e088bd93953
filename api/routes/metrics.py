"""GET /metrics: the node's metrics for Prometheus (docs/metrics.md).

On the API's address it needs the node or an audit token, like every read-only endpoint. The
config's `metrics.listen` also serves them on an address of their own without a token (for a
scraper that cannot send one), from prometheus-client's own small HTTP server in a thread; the
log's size it shows is read again every `metrics.refresh_seconds` on the event loop.

The format follows the scraper's Accept header: OpenMetrics when it asks for it (Prometheus does),
else the Prometheus text format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.registry import CollectorRegistry
from sanic import Blueprint, Request, Sanic
from sanic.response import raw

from wingman.api.context import node, node_of
from wingman.api.openapi.describe import Answer, doc

bp = Blueprint("metrics")
log = structlog.get_logger("wingman.metrics")
PREFIX = "wingman_"


@bp.get("/metrics", ctx_read_only=True)
@doc(
    "The node's metrics for Prometheus (OpenMetrics when asked for, else the text format)",
    answers={200: Answer("The metrics", content={"text/plain": {"type": "string"}})},
)
async def metrics(request: Request):
    await node(request).metrics.refresh()
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return raw(encoder(request.app.ctx.metrics_registry), content_type=content_type)


def _api_families(app: Sanic) -> Iterator[Metric]:
    """What only the API knows: its websockets and event streams."""
    sockets = getattr(app.ctx, "sockets", None)
    if sockets is not None:
        yield GaugeMetricFamily(PREFIX + "websocket_sockets", "Websockets open", value=sockets.count.total())
        yield CounterMetricFamily(
            PREFIX + "websocket_slow_readers_dropped",
            "Websockets closed because their client read too slowly (since the daemon started)",
            value=sockets.slow_readers_dropped,
        )
    streams = getattr(app.ctx, "event_streams", None)
    yield GaugeMetricFamily(
        PREFIX + "event_stream_subscribers", "Clients of GET /api/events/stream", value=len(streams or ())
    )


def install(app: Sanic) -> None:
    """The route, and the metrics started once the daemon is (call after the daemon's listener)."""
    app.blueprint(bp)

    @app.before_server_start
    async def start_metrics(app: Sanic) -> None:
        the_node = node_of(app)
        registry = CollectorRegistry(auto_describe=False)
        the_node.metrics.extra.append(lambda: _api_families(app))
        registry.register(the_node.metrics)
        app.ctx.metrics_registry = registry
        await the_node.metrics.start()
        address = the_node.config.metrics.listen_address
        app.ctx.metrics_listener = None
        if address is not None:
            host, port = address
            server, _thread = start_http_server(port, host, registry)
            app.ctx.metrics_listener = server
            app.ctx.metrics_refresh = asyncio.create_task(_refresh(app), name="metrics-refresh")
            log.info("metrics served without a token", address=f"{host}:{port}")

    @app.before_server_stop
    async def stop_metrics(app: Sanic) -> None:
        the_node = node_of(app)
        the_node.metrics.stop()
        server = getattr(app.ctx, "metrics_listener", None)
        if server is not None:
            app.ctx.metrics_refresh.cancel()
            await asyncio.gather(app.ctx.metrics_refresh, return_exceptions=True)
            await asyncio.to_thread(server.shutdown)
            server.server_close()


async def _refresh(app: Sanic) -> None:
    the_node = node_of(app)
    every = the_node.config.metrics.refresh_seconds
    while True:
        await asyncio.sleep(every)
        try:
            await the_node.metrics.refresh()
        except Exception:
            log.exception("metrics refresh failed; the listener serves the last figures")
