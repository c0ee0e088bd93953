"""The API fuzzed from its own OpenAPI document by schemathesis, against a real daemon, with every
check schemathesis has (the CLI's `--checks all`), data that fits the document and data that does
not (its positive and negative modes), every operation, the websocket and the event stream included.

Path parameters are steered to servers (and operations) that exist most of the time, so the fuzzer
reaches the power paths, 202s and all; it deletes only servers kept for that. For every answer,
besides schemathesis' checks:
- no 500, and a 502 or 503 only where documented;
- a request refused at the door (a 4xx) wrote no event: no event in the log carries its request id
  (the suspended-server start, recorded by design, is the one exception).

What is left out, and why (each is a fact of HTTP or JSON Schema, said in the document's words):
- EXCLUDED_CHECKS, per operation, below;
- cases with `since` after `until`: the daemon refuses an inverted window (400: for an auditor it is
  a mistake, not "nothing happened"), and JSON Schema cannot relate two parameters;
- integral floats (`5.0`) where an integer belongs: JSON Schema counts them as integers, the daemon
  refuses them as Wings' Go decoder does (the document's description says so); they are sent as `5`;
- unknown query parameters and headers: ignored, as by every HTTP server (proxies add headers);
  OpenAPI cannot declare that, and schemathesis would expect them refused;
- 413 (a body over 64 KiB) counts as a refusal of negative data: the HTTP layer refuses it before
  the body is read, whatever it holds;
- allocation IPs (`settings.allocations.mappings`) are moved to loopback addresses: an IP is
  refused at the door unless the host has it (engine.servers.host_addresses), which the document
  cannot know; any IP is still a valid key to it, so the case stays positive.

Bounded for CI: EXAMPLES generated cases per operation, plus schemathesis' coverage cases. Two
checks act only in schemathesis' stateful phase (`use_after_free`, `ensure_resource_availability`):
they run here but find nothing to judge; the CLI's stateful phase, which infers the links between
operations from the answers, is where they bite (the state machine of the Python API finds no link in
the document to follow)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import sqlite3
import uuid as uuidlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from tests.support.daemon import AUDIT_TOKEN, TOKEN, definition
from tests.support.http import database_path, power
from wingman.api.app import DESCRIPTION, create_app
from wingman.api.auth import PUBLIC_PATHS
from wingman.api.openapi.document import build as build_openapi
from wingman.engine.config import parse_config
from wingman.engine.power.outcomes import SUSPENDED_MESSAGE

EXAMPLES = 25
STREAM_SECONDS = 1.0  # an event stream never ends: schemathesis reads it this long (or 20 events)
SLEEPER = dict(invocation="exec sleep 1000", done=(), stop={"type": "signal", "value": "SIGTERM"}, stop_timeout=2)
STABLE = [definition(**SLEEPER) for _ in range(3)]  # power, commands, reads
VICTIMS = [definition(**SLEEPER) for _ in range(4)]  # the ones DELETE may take
ACCEPTED: list[str] = []  # operation ids from 202s, for GET /api/operations/{operation_id}
SEEN: dict[str, dict[int, int]] = {}  # operation -> status -> answers: what the fuzzing reached

WEBSOCKET = "/api/servers/{uuid}/ws"
HISTORY = r"^/api/servers/\{uuid\}/(state|events|diagram|diagram/timeline)$"
# Checks left out, by operation (a path regex), with the reason. Every other check runs everywhere.
EXCLUDED_CHECKS: dict[str, dict[str, str]] = {
    ".*": {
        "not_a_server_error": "it counts every 5xx; Wings answers 502 to a command for a stopped server, and 503 says "
        "the event store cannot record: no_undocumented_server_error below allows those two "
        "where documented, and nothing else",
    },
    f"^{re.escape(WEBSOCKET)}$": {
        "positive_data_acceptance": "a websocket opens with an upgrade handshake no HTTP client makes; every plain "
        "request is the documented 426 (test_ws_* open real sockets)",
    },
    HISTORY: {
        "use_after_free": "a deleted server's history stays in the log: its state, events and diagrams answer 200, "
        "as their descriptions say",
    },
}


def hook_config() -> SchemathesisConfig:
    """The configuration both fuzz tests share: every check, and the exclusions above."""
    return SchemathesisConfig.from_dict(
        {
            "generation": {"allow-extra-parameters": False, "max-examples": EXAMPLES},
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, 431]
                }
            },
            "operations": [
                {"include-path-regex": path, "checks": {name: {"enabled": False} for name in checks}}
                for path, checks in EXCLUDED_CHECKS.items()
            ],
        }
    )


def document() -> dict:
    """The document the daemon serves, built from the app's routes (no daemon needed for that;
    test_openapi_document.py checks the served one is this one)."""
    app = create_app(parse_config({"token": TOKEN}), name=f"fuzz-schema-{uuidlib.uuid4().hex[:8]}")
    app.router.finalize()
    return build_openapi(app, "wingman", "test", DESCRIPTION, PUBLIC_PATHS)


def load_schema():
    loaded = schemathesis.openapi.from_dict(document(), config=hook_config())

    @loaded.hook
    def filter_query(ctx, query):
        since, until = (query or {}).get("since"), (query or {}).get("until")
        return not (isinstance(since, str) and isinstance(until, str) and _inverted(since, until))

    @loaded.hook
    def map_body(ctx, body):
        return _on_this_host(_whole(body))

    return loaded


def _inverted(since: str, until: str) -> bool:
    from wingman.engine.store.points import BadPoint, parse_time

    try:
        return parse_time(since) > parse_time(until)
    except BadPoint:
        return False


def _on_this_host(body):
    """Allocation IPs become loopback addresses of this host (the module's docstring says why)."""
    settings_ = body.get("settings") if isinstance(body, dict) else None
    allocations = settings_.get("allocations") if isinstance(settings_, dict) else None
    mappings = allocations.get("mappings") if isinstance(allocations, dict) else None
    if isinstance(mappings, dict):
        moved = {}
        for key, ports in mappings.items():
            try:
                ip = ipaddress.ip_address(key)
            except ValueError:
                moved[key] = ports  # not an IP: negative data, left for the parser to refuse
                continue
            moved["127.0.0.1" if ip.version == 4 else "::1"] = ports
        allocations["mappings"] = moved
    return body


def _whole(value):
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


schema = load_schema()


@pytest.fixture(scope="module")
def fuzz_daemon(module_daemon):
    d = module_daemon(servers=STABLE + VICTIMS)
    for server in STABLE:  # running servers, and operations for GET /api/operations/{id} to find
        ACCEPTED.append(power(d, server["settings"]["uuid"], "start")["id"])
    return d


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
        elif name == "path":  # a tile (api/routes/tlog.py): the first leaf's, once a checkpoint covers it
            params[name] = "0/000.p/1"


def no_undocumented_server_error(response, case) -> None:
    """No 500, ever; a 501, 502 or 503 only where it is documented (a Wings route wingman does not
    provide, the server's runtime refused, the store is unavailable: the daemon is fine)."""
    status = response.status_code
    documented = case.operation.definition.raw.get("responses", {})
    assert status < 500 or (status in (501, 502, 503) and str(status) in documented), (
        f"{case.method} {case.formatted_path}: {status} {response.text[:300]}"
    )


def _events_of_request(path, request_id: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(
            "SELECT count(*) FROM events WHERE json_extract(metadata, '$.request_id') = ?", (request_id,)
        ).fetchone()[0]
    finally:
        conn.close()


def test_every_check_runs_but_the_listed_ones():
    """The exclusions are the list above, nothing else: a check schemathesis adds runs at once."""
    load_all_checks()
    names = set(CHECKS.get_all_names())
    assert {n for checks in EXCLUDED_CHECKS.values() for n in checks} <= names
    for operation in schema.get_all_operations():
        op = operation.ok()
        enabled = {n for n in names if schema.config.checks_config_for(operation=op).get_by_name(name=n).enabled}
        left_out = {n for path, checks in EXCLUDED_CHECKS.items() if re.search(path, op.path) for n in checks}
        assert enabled == names - left_out, op.label


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_the_api_keeps_its_documented_promises(case, fuzz_daemon):
    _steer(case)
    request_id = str(uuidlib.uuid4())
    token = AUDIT_TOKEN if request_id[0] in "0123" else TOKEN  # now and then the read-only token
    # Given to the call (not put in the case), so schemathesis knows it is a real credential and
    # probes the operation without it, and with a wrong one, for `ignored_auth`.
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    stream = case.operation.path.endswith("/events/stream")
    response = case.call(base_url=fuzz_daemon.url, headers=headers, timeout=STREAM_SECONDS if stream else 60)
    case.validate_response(response, headers=headers)  # every check the configuration enables
    no_undocumented_server_error(response, case)
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
                f"{case.method} {case.formatted_path} was refused with {response.status_code} but wrote events"
            )


def test_the_fuzzer_reached_the_power_paths():
    """Not a check of the daemon: a check that the fuzzing above was not testing almost nothing."""
    assert ACCEPTED, "no power request was ever accepted: the fuzzer never reached the power paths"
    assert len(SEEN) == len(list(schema.get_all_operations())), "an operation was never called"
    for label, statuses in sorted(SEEN.items()):
        if label == f"GET {WEBSOCKET}":
            # Refused before any upgrade, as documented (405: schemathesis' unsupported-method probes).
            assert 426 in statuses and set(statuses) <= {404, 405, 426}, statuses
            continue
        if label in ("POST /api/servers/{uuid}/sync", "POST /api/servers/{uuid}/reinstall"):
            # Only a node with a Panel can sync or reinstall; this daemon is standalone, so 409 is
            # their success here. Their 204 and 202 from a real Panel stand-in are
            # tests/panel/test_panel_create.py's and tests/power/test_install.py's.
            assert 409 in statuses, statuses
            continue
        if "not provided" in schema.find_operation_by_label(label).definition.raw.get("tags", ()):
            # A Wings route wingman does not provide never succeeds; its 501 for a real server is
            # tests/http/test_not_provided.py's (the fuzzer's uuids are mostly unknown: 404).
            assert not any(200 <= s < 300 for s in statuses), statuses
            continue
        assert any(200 <= s < 300 for s in statuses), f"{label} never succeeded: {statuses}"
    total = sum(n for statuses in SEEN.values() for n in statuses.values())
    print(f"fuzzing: {len(SEEN)} operations, {total} cases, {len(ACCEPTED)} power requests accepted")
    for label, statuses in sorted(SEEN.items()):
        print(f"  {label}: {dict(sorted(statuses.items()))}")
