"""The OpenAPI document the daemon serves is complete and valid: OpenAPI 3.1 by the spec's own
validator, every route of the app in it, every reference resolving, who may call what said with
security schemes, every query parameter and error a route can answer documented."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.daemon import TOKEN
from wingman.api.app import create_app
from wingman.api.openapi.describe import doc
from wingman.api.openapi.document import Undocumented, build
from wingman.engine.config import parse_config


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon()


@pytest.fixture(scope="module")
def served(daemon) -> dict:
    resp = httpx.get(f"{daemon.url}/api/openapi.json", timeout=30)  # no token needed
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    return resp.json()


def test_the_document_is_valid_openapi_3_1(served):
    validate(served)
    assert served["openapi"].startswith("3.1")


def test_every_reference_resolves_from_the_document_root(served):
    refs = set(re.findall(r'"\$ref":\s*"([^"]+)"', json.dumps(served)))
    assert refs and all(r.startswith("#/components/schemas/") for r in refs), refs
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(served["components"]["schemas"])


def test_every_route_of_the_app_is_in_it(served):
    app = create_app(parse_config({"token": TOKEN}), name="doc-routes")
    app.router.finalize()
    routes = {
        ("/" + re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", r.path.strip("/")), m.lower())
        for r in app.router.routes
        for m in r.methods
        if m not in ("HEAD", "OPTIONS")
    }
    # The operator page (/ui) is for a browser: not part of the API's document.
    api_routes = {(path, method) for path, method in routes if path != "/ui" and not path.startswith("/ui/")}
    documented = {(path, method) for path, item in served["paths"].items() for method in item}
    assert documented == api_routes and len(api_routes) < len(routes)


def test_a_route_without_a_description_stops_the_build():
    app = create_app(parse_config({"token": TOKEN}), name="doc-missing")

    @app.get("/api/forgotten")
    async def forgotten(request):  # no @doc
        return None

    app.router.finalize()
    with pytest.raises(Undocumented, match="GET /api/forgotten"):
        build(app, "t", "0", "", ("/api/openapi.json",))


def test_security_says_who_may_call_what(served):
    schemes = served["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer"}
    ops = {(path, method): op for path, item in served["paths"].items() for method, op in item.items()}
    assert ops[("/api/openapi.json", "get")]["security"] == []
    assert ops[("/api/servers/{uuid}/power", "post")]["security"] == [{"nodeToken": []}]
    assert {"auditToken": []} in ops[("/api/events", "get")]["security"]
    for (path, method), op in ops.items():
        if op["security"]:
            assert {"401", "403"} <= set(op["responses"]), (path, method)
            for status in ("401", "403"):
                assert op["responses"][status]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"
                }


def test_query_parameters_and_answers_are_documented(served):
    def params(path, method="get"):
        return {p["name"]: p for p in served["paths"][path][method]["parameters"]}

    assert {"after", "limit", "type", "actor", "operation", "since", "until", "server"} <= set(params("/api/events"))
    assert params("/api/events")["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert "at" in params("/api/servers/{uuid}/state")
    assert "size" in params("/api/servers/{uuid}/logs")
    assert params("/api/events/stream")["Last-Event-ID"]["in"] == "header"
    assert set(params("/api/statechart")["format"]["schema"]["enum"]) >= {"mermaid", "dot", "svg", "png", "scxml"}
    power = served["paths"]["/api/servers/{uuid}/power"]["post"]
    assert {"202", "400", "404", "422", "503"} <= set(power["responses"])
    assert power["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OperationBody"
    }
    body = served["components"]["schemas"]["PowerBody"]
    assert body["properties"]["action"]["enum"] == ["start", "stop", "restart", "kill"]


def test_the_doc_decorator_keeps_its_handler():
    async def handler(request):
        return "same"

    assert doc("x")(handler) is handler and handler.__openapi__.summary == "x"


def test_a_405_says_which_methods_the_path_answers(daemon):
    with daemon.client() as c:
        resp = c.put("/api/servers")
    assert resp.status_code == 405
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
