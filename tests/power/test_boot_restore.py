"""Boot recovery runs in the background, a few servers at a time: the API answers from the
first moment, a server not restored yet says so, and its power actions wait for it."""

from __future__ import annotations

import asyncio

from tests.support.daemon import definition


async def test_the_api_answers_while_servers_are_restored_and_each_says_where_it_is(
    engine_harness, served_daemon, monkeypatch
):
    servers = [definition() for _ in range(3)]
    a, b, c = (s["settings"]["uuid"] for s in servers)
    first = engine_harness(servers)
    async with first:
        for uuid in (a, b, c):
            await first.outcome(await first.act(uuid, "start"))
    # The first daemon has stopped; its servers run on, to be adopted one at a time.
    d = served_daemon(servers, system={"boot_concurrency": 1})
    runtime = d.daemon.runtimes["process"]
    adopt, gate, held = runtime.adopt, asyncio.Event(), asyncio.Event()

    async def slow_for_b(config, *args):
        if config.uuid == b:
            held.set()
            await gate.wait()  # B's reconciliation takes as long as the test wants
        return await adopt(config, *args)

    monkeypatch.setattr(runtime, "adopt", slow_for_b)
    await d.start()
    await asyncio.wait_for(held.wait(), 30)
    async with d.client() as c_:
        system = (await c_.get("/api/system")).json()["wingman"]["boot_recovery"]
        assert system["done"] is False and system["restoring"] >= 2  # B held, and C behind it
        listed = {s["uuid"]: s for s in (await c_.get("/api/servers")).json()}
        recovery = {u: listed[u]["recovery"] for u in (a, b, c)}
        assert recovery[b] == "pending" and recovery[c] == "pending"
        # A was restored first or is still to come (the order is the registry's): whichever, it
        # is honest about it.
        assert recovery[a] in ("restored", "pending")
        # A kill of B is accepted now and waits for B to be restored: no blind decision.
        kill = await c_.post(f"/api/servers/{b}/power", json={"action": "kill"})
        assert kill.status_code == 202
        assert (await c_.get(f"/api/operations/{kill.json()['id']}")).json()["status"] == "queued"
        gate.set()
        await asyncio.wait_for(d.daemon.recovery.done.wait(), 60)
        assert (await d.outcome(kill.json()["id"]))["status"] == "succeeded"
        states = {u: (await c_.get(f"/api/servers/{u}")).json() for u in (a, b, c)}
        assert {u: s["recovery"] for u, s in states.items()} == {a: "restored", b: "restored", c: "restored"}
        assert [states[u]["state"] for u in (a, b, c)] == ["running", "offline", "running"]
        assert d.daemon.recovered["adopted"] == 3
        for uuid in (a, c):
            op = (await c_.post(f"/api/servers/{uuid}/power", json={"action": "kill"})).json()
            assert (await d.outcome(op["id"]))["status"] == "succeeded"
