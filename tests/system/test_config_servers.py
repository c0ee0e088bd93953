"""The config file's `servers:` list: held packed (engine.config_servers), and the definitions boot
records from it (engine.servers.from_config) are the ones the rule says, a few parsed at a time."""

import datetime
import random
import uuid as uuidlib

import pytest
from structlog.testing import capture_logs

from tests.conftest import TEST_META
from tests.support.daemon import TOKEN, definition
from wingman.engine.config import ConfigError, DaemonConfig, parse_config
from wingman.engine.config_servers import ServerDocs
from wingman.engine.servers.definition import InvalidDefinition, parse_definition
from wingman.engine.servers.from_config import latest_definitions


def test_documents_come_back_exactly_as_they_went_in():
    docs = [
        definition(),
        {"settings": {"uuid": "x", "when": datetime.date(2026, 12, 1), "blob": b"\x00", "big": 10**30, "tags": {"a"}}},
        {},
    ]
    held = parse_config({"token": TOKEN, "servers": docs}).servers
    assert isinstance(held, ServerDocs)
    assert len(held) == 3 and list(held) == docs and held == docs
    assert held[1] == docs[1] and held[-1] == {} and held[0:2] == docs[0:2]
    with pytest.raises(IndexError):
        held[3]
    assert DaemonConfig(token=TOKEN).servers == [] and len(DaemonConfig(token=TOKEN).servers) == 0
    assert DaemonConfig(token=TOKEN, servers=held).servers == docs


@pytest.mark.parametrize(
    "servers,message",
    [
        ([1], "config: servers.0: Input should be a valid dictionary"),
        ("x", "config: servers: Input should be a valid list"),
        ([{"a": 1}, 3], "config: servers.1: Input should be a valid dictionary"),
    ],
)
def test_a_servers_list_that_is_not_a_list_of_mappings_is_refused_as_before(servers, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"token": TOKEN, "servers": servers})
    assert str(err.value) == message


def reference(docs):
    """The rule as boot applied it before definitions were parsed a batch at a time: all parsed
    first, in order; the last valid one of a server counts, at the place of its first."""
    latest = {}
    for doc in docs:
        try:
            cfg = parse_definition(doc)
        except InvalidDefinition:
            continue
        latest[cfg.uuid] = cfg
    return list(latest.values())


def test_each_server_is_recorded_once_with_its_last_valid_definition_at_its_first_place():
    rng = random.Random(13)
    uuids = [str(uuidlib.UUID(int=rng.getrandbits(128), version=4)) for _ in range(12)]
    for _ in range(30):
        docs = []
        for _ in range(rng.randint(0, 25)):
            u = rng.choice(uuids)
            spelled = rng.choice([u, u.upper(), u.replace("-", ""), f"urn:uuid:{u}", u.encode()])
            doc = definition(spelled, invocation=f"game {rng.random()}")
            if rng.random() < 0.25:  # invalid: the whole definition is skipped
                doc["settings"]["stop_timeout"] = -1
            docs.append(rng.choice([doc, doc, "not a mapping", {"settings": {"uuid": "nope"}}]))
        expected = reference(docs)
        with capture_logs() as logs:
            got = list(latest_definitions(ServerDocs(docs)))
        assert [(c.uuid, c.definition) for c in got] == [(c.uuid, c.definition) for c in expected]
        invalid = sum(1 for d in docs if _invalid(d))
        valid_uuids = [parse_definition(d).uuid for d in docs if not _invalid(d)]
        assert [e["event"] for e in logs].count("invalid server in the config file; skipped") == invalid
        assert sorted(e["server"] for e in logs if "defined twice" in e["event"]) == sorted(
            u for i, u in enumerate(valid_uuids) if u in valid_uuids[:i]
        )


def _invalid(doc) -> bool:
    try:
        parse_definition(doc)
    except InvalidDefinition:
        return True
    return False


async def test_boot_records_a_server_defined_twice_once_with_its_last_definition(engine_harness):
    first, other = definition(), definition()
    uuid = first["settings"]["uuid"]
    last = definition(uuid, invocation="game --last")
    bad = definition(uuid, stop_timeout=-1)
    with capture_logs() as logs:
        async with engine_harness([first, other, last, bad]) as h:
            assert await h.types(uuid) == ["server.registered"]
            assert h.daemon.registry.config(uuid).invocation == "game --last"
            assert await h.types(other["settings"]["uuid"]) == ["server.registered"]
            assert [v.uuid for v in h.daemon.registry.views.values()][:2] == [uuid, other["settings"]["uuid"]]
            assert len(h.daemon.config.servers) == 0  # dropped once recorded
            # Booted again with the first definition only: an update, as before.
            await h.daemon.registry.update_to(parse_definition(first), TEST_META)
            assert (await h.types(uuid))[-1] == "server.configuration_changed"
    events = [e["event"] for e in logs]
    assert events.count("a server is defined twice in the config file; the last definition counts") == 1
    assert events.count("invalid server in the config file; skipped") == 1
