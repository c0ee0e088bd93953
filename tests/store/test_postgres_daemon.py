"""The whole engine on PostgreSQL (the fleet option): power actions and a restart of the daemon."""

import pytest

from tests.support.daemon import definition

pytestmark = pytest.mark.postgres


async def test_power_cycle_and_reload_on_postgres(engine_harness, pg_url):
    d = definition()
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], database_url=pg_url) as h:
        assert (await h.outcome(await h.act(uuid, "start"))).status == "succeeded"
        assert (await h.outcome(await h.act(uuid, "stop"))).status == "succeeded"
        types = await h.types(uuid)
        version = len(types)
    async with engine_harness([d], database_url=pg_url) as again:
        view = again.daemon.registry.get(uuid)
        assert view.state == "offline" and view.version == version
        assert (await again.outcome(await again.act(uuid, "start"))).status == "succeeded"
        assert again.state(uuid) == "running"
