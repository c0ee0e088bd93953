"""Node information, as Wings' `GET /api/system`, plus wingman's own facts."""
from __future__ import annotations

import os
import platform
import time
from functools import lru_cache
from importlib.metadata import version

from sanic import Blueprint, Request
from sanic.response import json
from api.openapi.describe import Answer, doc
from api.openapi.schemas import SystemBody

from engine.store.database import is_sqlite

bp = Blueprint("system")


@lru_cache(maxsize=1)
def _version() -> str:
    return version("wingman")


@bp.get("/api/system", ctx_read_only=True)
@doc("Node information (Wings' fields), and the daemon's own facts",
     answers={200: Answer("The node and the daemon", SystemBody)})
async def system(request: Request):
    daemon = request.app.ctx.daemon
    uname = platform.uname()
    return json({
        "architecture": uname.machine,
        "cpu_count": os.cpu_count(),
        "kernel_version": uname.release,
        "os": uname.system.lower(),
        "version": _version(),
        "wingman": {
            "uptime_seconds": round(time.time() - daemon.started_at, 1),
            "servers": len(daemon.registry.views),
            "runtimes": sorted(daemon.runtimes),
            "database": "sqlite" if is_sqlite(daemon.config.database_url) else "postgresql",
            "events": daemon.store.last_position,
            "boot_recovery": {**daemon.recovered, "restoring": daemon.recovery.pending,
                              "done": daemon.recovery.done.is_set()},
            "settled": daemon.settled.is_set(),
        },
    })
