"""Node information, as Wings' `GET /api/system`, plus wingman's own facts."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib.metadata import version

from sanic import Blueprint, Request
from sanic.response import json

from wingman.api.context import node
from wingman.api.openapi.describe import Answer, doc
from wingman.api.openapi.schemas import SystemBody

bp = Blueprint("system")


@lru_cache(maxsize=1)
def _version() -> str:
    return version("wingman")


@bp.get("/api/system", ctx_read_only=True)
@doc(
    "Node information (Wings' fields), and the daemon's own facts",
    answers={200: Answer("The node and the daemon", SystemBody)},
)
async def system(request: Request):
    uname = platform.uname()
    return json(
        {
            "architecture": uname.machine,
            "cpu_count": os.cpu_count(),
            "kernel_version": uname.release,
            "os": uname.system.lower(),
            "version": _version(),
            "wingman": node(request).facts(),
        }
    )
