"""The API fuzzed from its own OpenAPI document by schemathesis, against a real daemon.

Every operation, with data that fits its schema and data that does not. Path parameters are
steered to servers (and operations) that exist most of the time, so the fuzzer reaches the power
paths, 202s and all; it deletes only servers kept for that. For every answer:
- no 500, and a 502 or 503 only where documented (Wings answers 502 to a command for a stopped
  server; 503 says the event store cannot record);
- the status is documented, and the body matches its documented schema;
- an operation that needs a token refuses a request without one;
- a request refused at the door (a 4xx) wrote no event: no event in the log carries its
  request id (the suspended-server start, recorded by design, is the one exception).

Bounded for CI: EXAMPLES cases per operation. The websocket and the event stream are left out:
neither is a request that ends (their own tests cover them)."""
from __future__ import annotations

import hashlib
import sqlite3
import uuid as uuidlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, response_schema_conformance, status_code_conformance

from api.app import DESCRIPTION, create_app
from api.auth import PUBLIC_PATHS
from api.openapi.document import build as build_openapi
from engine.config import parse_config
from engine.power.outcomes import SUSPENDED_MESSAGE
from tests.http_support import database_path, power
from tests.support import AUDIT_TOKEN, TOKEN, definition

EXAMPLES = 30
SLEEPER = dict(invocation="exec sleep 1000", done=(), stop={"type": "signal", "value": "SIGTERM"}, stop_timeout=2)
STABLE = [definition(**SLEEPER) for _ in range(3)]  # power, commands, reads
VICTIMS = [definition(**SLEEPER) for _ in range(4)]  # the ones DELETE may take
ACCEPTED: list[str] = []  # operation ids from 202s, for GET /api/operations/{operation_id}
SEEN: dict[str, dict[int, int]] = {}  # operation -> status -> answers: what the fuzzing reached


@pytest.fixture(scope="module")
def fuzz_daemon(module_daemon):
    d = module_daemon(servers=STABLE + VICTIMS)
    for server in STABLE:  # running servers, and operations for GET /api/operations/{id} to find
        ACCEPTED.append(power(d, server["settings"]["uuid"], "start")["id"])
    return d


def _document() -> dict:
    """The document the daemon serves, built from the app's routes (no daemon needed for that;
    test_openapi_document.py checks the served one is this one)."""
    app = create_app(parse_config({"token": TOKEN}), name="fuzz-schema")
    app.router.finalize()
    return build_openapi(app, "wingman", "test", DESCRIPTION, PUBLIC_PATHS)


schema = schemathesis.openapi.from_dict(_document()).exclude(path_regex=r"(/ws|/events/stream)$")


def _steer(case) -> None:
    """Most generated ids become ones that exist; one in five stays as generated (a 404)."""
    params = case.path_parameters or {}
    for name, value in params.items():
        bucket = int(hashlib.sha256(repr(value).encode()).hexdigest(), 16) % 5
        if bucket == 0:
            continue
        if name == "uuid":
            pool = VICTIMS if case.method.upper() == "DELETE" else STABLE
            params[name] = pool[bucket % len(pool)]["settings"]["uuid"]
        elif name == "operation_id" and ACCEPTED:
            params[name] = ACCEPTED[bucket % len(ACCEPTED)]


def no_undocumented_server_error(ctx, response, case) -> None:
    """No 500, ever; a 502 or 503 only where it is documented (the server's runtime refused, the
    store is unavailable: the daemon is fine, what it speaks for is not)."""
    status = response.status_code
    documented = case.operation.definition.raw.get("responses", {})
    assert status < 500 or (status in (502, 503) and str(status) in documented), (
        f"{case.method} {case.formatted_path}: {status} {response.text[:300]}")


def _events_of_request(path, request_id: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM events WHERE json_extract(metadata, '$.request_id') = ?",
                            (request_id,)).fetchone()[0]
    finally:
        conn.close()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_the_api_keeps_its_documented_promises(case, fuzz_daemon):
    _steer(case)
    request_id = str(uuidlib.uuid4())
    token = AUDIT_TOKEN if request_id[0] in "0123" else TOKEN  # now and then the read-only token
    # Given to the call (not put in the case), so schemathesis knows it is a real credential and
    # probes the operation without it, and with a wrong one, for `ignored_auth`.
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    response = case.call(base_url=fuzz_daemon.url, headers=headers, timeout=60)
    case.validate_response(response, checks=(status_code_conformance, response_schema_conformance, ignored_auth))
    no_undocumented_server_error(None, response, case)
    seen = SEEN.setdefault(case.operation.label, {})
    seen[response.status_code] = seen.get(response.status_code, 0) + 1
    if response.status_code == 202:
        ACCEPTED.append(response.json()["id"])
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict) or body.get("error") != SUSPENDED_MESSAGE:
            assert _events_of_request(database_path(fuzz_daemon), request_id) == 0, (
                f"{case.method} {case.formatted_path} was refused with {response.status_code} but wrote events")


def test_the_fuzzer_reached_the_power_paths():
    """Not a check of the daemon: a check that the fuzzing above was not testing almost nothing."""
    assert ACCEPTED, "no power request was ever accepted: the fuzzer never reached the power paths"
    assert len(SEEN) == len(list(schema.get_all_operations())), "an operation was never called"
    for label, statuses in sorted(SEEN.items()):
        assert any(200 <= s < 300 for s in statuses), f"{label} never succeeded: {statuses}"
    total = sum(n for statuses in SEEN.values() for n in statuses.values())
    print(f"fuzzing: {len(SEEN)} operations, {total} cases, {len(ACCEPTED)} power requests accepted")
    for label, statuses in sorted(SEEN.items()):
        print(f"  {label}: {dict(sorted(statuses.items()))}")
