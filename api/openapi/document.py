"""Build the OpenAPI 3.1 document from the app's routes and their `@doc` descriptions.

OpenAPI 3.1 schemas are JSON Schema, so pydantic's schemas go in as they are; every model lands
in `components/schemas` and every `$ref` points there. Two bearer schemes say who may call what:
the node token everything, an audit token only the read-only routes (`ctx_read_only=True`).
Every secured operation documents 401 and 403, every operation on a path with a server or
operation id 404, and every operation 413, 414 and 431 (what the HTTP layer refuses).

A websocket route declares no security: the Bearer check lets it through (api/auth.py) and the
socket authenticates with a JWT in its first frame. It documents 426, the answer to a request that
is not a websocket handshake. Every optional query parameter allows an empty value: Sanic drops
blank query values, so `?format=` is the same as no `format` (the default).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sanic import Sanic

from wingman.api.openapi.describe import ERROR_STATUSES, Answer, OperationDoc
from wingman.api.openapi.schemas import MODELS, ErrorBody, State

REF = "#/components/schemas/{model}"
HTTP_LAYER = (413, 414, 431)  # any request can get these before a handler runs
NODE, AUDIT = "nodeToken", "auditToken"
# What JSON Schema cannot say (it counts 5.0 as an integer), said in words.
WHOLE_NUMBERS = (
    " An integer in a JSON body is written without a fraction (`5`, not `5.0`), as Wings' Go decoder "
    "reads it; `5.0` where an integer belongs is a 400 (422 in a server definition)."
)


class Undocumented(Exception):
    """A route without `@doc`: the document would silently leave it out."""


def build(
    app: Sanic,
    title: str,
    version: str,
    description: str,
    public: tuple[str, ...],
    states: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The document of `app`'s routes, its `state` enums spelled with `states` (the chart in force;
    None: the packaged chart's)."""
    docs = _documented_routes(app)
    models = sorted({*MODELS, *(m for d, _ in docs.values() for m in _models_of(d))}, key=lambda m: m.__name__)
    keyed, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    refs = {m: keyed[(m, "validation")] for m in models}
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), (described, route) in sorted(docs.items()):
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, described, route, refs, public)
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description + WHOLE_NUMBERS},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                NODE: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The node token (config `token`): every endpoint.",
                },
                AUDIT: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An audit token (config `audit_tokens`): the read-only endpoints only.",
                },
            },
        },
    }
    return document if states is None else _with_states(document, State.__args__, states)


def _with_states(doc: Any, packaged: tuple[str, ...], states: tuple[str, ...]) -> Any:
    """`doc` with each enum of the packaged chart's states (schemas.State, fixed when the module is
    imported) spelled as the chart the daemon enforces (system.statechart): a client is told the
    states it will be answered with."""
    if isinstance(doc, dict):
        if doc.get("enum") == list(packaged):
            return {**doc, "enum": list(states)}
        return {k: _with_states(v, packaged, states) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_with_states(v, packaged, states) for v in doc]
    return doc


# The operator page (api/ui) is for a browser, not a client of the API: not in the document.
NOT_API = ("ui/",)


def _documented_routes(app: Sanic) -> dict[tuple[str, str], tuple[OperationDoc, Any]]:
    found = {}
    for route in app.router.routes:
        if route.path == "ui" or route.path.startswith(NOT_API):
            continue
        path = "/" + re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", route.path.strip("/"))
        described = _doc_of(route.handler)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            if described is None:
                raise Undocumented(f"{method} {path} has no @doc description")
            found[(path, method)] = (described, route)
    return found


def _doc_of(handler) -> OperationDoc | None:
    """The handler's description, through Sanic's wrappers (a websocket handler is the first
    argument of a partial of the app's own websocket handler)."""
    if isinstance(handler, functools.partial):
        return next((d for d in map(_doc_of, handler.args) if d is not None), None)
    while handler is not None:
        described = getattr(handler, "__openapi__", None)
        if described is not None:
            return described
        handler = getattr(handler, "__wrapped__", None)
    return None


def _models_of(d: OperationDoc) -> list[type[BaseModel]]:
    found = [a.model for a in d.answers.values() if a.model is not None]
    return found + ([d.body] if d.body is not None else [])


def _operation(path: str, method: str, d: OperationDoc, route, refs: dict, public: tuple[str, ...]) -> dict[str, Any]:
    websocket = bool(getattr(route.extra, "websocket", False))
    # api/auth.py asks a token of /api/ paths only (Wings' signed-URL routes, /download and /upload, are outside it).
    secured = path.startswith("/api/") and not path.startswith(public) and not websocket
    read_only = bool(getattr(route.ctx, "read_only", False))
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]
    params += [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required,
            "description": p.description,
            "schema": p.schema,
            **({"allowEmptyValue": True} if p.where == "query" and not p.required else {}),
        }
        for p in d.params
    ]
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{route.name.split('.')[-1]}",
        "summary": d.summary,
        "description": d.description or d.summary,
        "tags": list(d.tags) or [path.split("/")[2] if path.count("/") > 1 else "api"],
        "parameters": params,
        "responses": {},
        "security": ([{NODE: []}, {AUDIT: []}] if read_only else [{NODE: []}]) if secured else [],
        **d.extensions,
    }
    if d.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[d.body]}}}
    for status, answer in d.answers.items():
        op["responses"][str(status)] = _response(answer, refs)
    errors = set(d.errors) | set(HTTP_LAYER) | ({426} if websocket else set())
    if secured:
        errors |= {401, 403}
    if "{uuid}" in path or "{operation_id}" in path or any(p.name == "server" for p in d.params):
        errors.add(404)
    for status in sorted(errors):
        op["responses"].setdefault(str(status), _response(Answer(ERROR_STATUSES[status], ErrorBody), refs))
    return op


def _response(answer: Answer, refs: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.model is not None:
        out["content"] = {"application/json": {"schema": refs[answer.model]}}
    elif answer.content:
        out["content"] = {media: {"schema": schema} for media, schema in answer.content.items()}
    if answer.headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in answer.headers.items()
        }
    return out
