"""Servers players can reach: the node's bridge network (Wings' `docker.network`), each allocation
published on the host over TCP and UDP, a port the host already holds named in the start's
outcome, and the door check that refuses allocation IPs the host does not have.

Against the real engine of tests/support/docker_engine.py, which runs `dockerd --iptables=false
--bridge=none`: Docker's userland proxy carries a player's traffic into the container. The game
server is a small static C program (tests/support/net_gameserver.c: busybox's `nc` has no UDP), copied into
the server's folder so it runs inside the container from the bind mount, on the test image as it is.

Networks a test makes for itself have names of their own and are removed afterwards; Wings' default
`pterodactyl_nw` may be in use by other suites at the same time and is left. Timeouts are upper
bounds for waiting, never speed assertions.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import shutil
import socket
import subprocess
import threading
import uuid as uuidlib
from pathlib import Path

import docker
import pytest

from tests.support.daemon import definition, free_port, unavailable
from tests.support.docker_engine import inspect_server_container
from tests.support.http import assert_json_error, total_events
from tests.support.panel import PanelStandIn, panel_events, wait_events, with_panel
from tests.support.waiting import eventually
from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.base import LaunchSpec, RuntimeFailure
from wingman.engine.environments.docker.network import Networks, container_network, port_taken, published
from wingman.engine.environments.docker.spec import container_name
from wingman.engine.servers.definition import parse_definition
from wingman.engine.servers.host_addresses import AddressNotOnHost, HostAddresses

WAIT = 60
FOREIGN = "203.0.113.7"  # TEST-NET-3: never an address of this host


@pytest.fixture(scope="module")
def game(tmp_path_factory) -> Path:
    """The game server, static: the test image has no libc."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        unavailable("a C compiler is needed (.ci/system.sh installs gcc)")
    folder = tmp_path_factory.mktemp("game")
    source = Path(__file__).resolve().parents[1] / "support" / "net_gameserver.c"
    done = subprocess.run(
        [compiler, "-static", "-O2", "-o", str(folder / "game"), str(source)], capture_output=True, text=True
    )
    if done.returncode != 0:
        unavailable(f"the game server does not build statically (libc6-dev?): {done.stderr[-2000:]}")
    return folder / "game"


def allocations(port: int, ip: str = "127.0.0.1", **extra) -> dict:
    return {"default": {"ip": ip, "port": port}, "mappings": {ip: [port]}, **extra}


def game_server(uuid: str, image: str, port: int, ip: str = "127.0.0.1") -> dict:
    return definition(
        uuid,
        invocation=f"exec ./game {port}",
        done=("game listening",),
        runtime="docker",
        container={"image": image},
        allocations=allocations(port, ip),
        stop={"type": "command", "value": "stop"},
    )


def place_game(game: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(game, folder / "game")
    (folder / "game").chmod(0o755)


def tcp_answer(ip: str, port: int, timeout: float = WAIT) -> bytes:
    """What the game answers on TCP; dialled until it answers (the proxy takes a connection before
    the server inside listens, and closes it)."""

    def answer() -> bytes:
        with socket.create_connection((ip, port), timeout=2) as s:
            s.sendall(b"hello")
            return s.recv(100)

    return eventually(answer, timeout, f"a TCP answer from {ip}:{port}", ignoring=(OSError,))


def udp_answer(ip: str, port: int, timeout: float = WAIT) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)  # each try waits this long for the datagram back

        def answer() -> bytes:
            s.sendto(b"hello", (ip, port))
            return s.recvfrom(100)[0]

        return eventually(answer, timeout, f"a UDP answer from {ip}:{port}", interval=0, ignoring=(OSError,))


def power(daemon, uuid: str, action: str) -> dict:
    with daemon.client() as c:
        r = c.post(f"/api/servers/{uuid}/power", json={"action": action})
    assert r.status_code == 202, r.text
    return daemon.wait_operation(r.json()["id"], WAIT)


def add(daemon, doc: dict) -> str:
    with daemon.client() as c:
        r = c.post("/api/servers", json=doc)
    assert r.status_code == 201, r.text
    return doc["settings"]["uuid"]


def sdk(url: str) -> docker.APIClient:
    return docker.APIClient(base_url=url, version="auto", timeout=60)


# -- the whole daemon ---------------------------------------------------------------------------


@pytest.mark.docker
def test_a_player_on_the_host_reaches_the_server_over_tcp_and_udp(
    daemon_process, docker_uuids, docker_image, docker_engine, game
):
    d = daemon_process()
    port = free_port()
    uuid = add(d, game_server(docker_uuids.new(), docker_image, port))
    place_game(game, d.folder / "var" / "volumes" / uuid)
    op = power(d, uuid, "start")
    assert op["status"] == "succeeded", (op, d.read_log()[-3000:])

    assert tcp_answer("127.0.0.1", port) == b"tcp hello"
    assert udp_answer("127.0.0.1", port) == b"udp hello"
    # Wings' address for a 127.0.0.1 allocation, the bridge's, answers too (other containers use it).
    assert tcp_answer("172.18.0.1", port) == b"tcp hello"

    container = inspect_server_container(docker_engine, uuid)
    assert container["HostConfig"]["NetworkMode"] == "pterodactyl_nw"
    both = [{"HostIp": "127.0.0.1", "HostPort": str(port)}, {"HostIp": "172.18.0.1", "HostPort": str(port)}]
    assert container["HostConfig"]["PortBindings"] == {f"{port}/tcp": both, f"{port}/udp": both}
    assert set(container["Config"]["ExposedPorts"]) == {f"{port}/tcp", f"{port}/udp"}

    network = sdk(docker_engine).inspect_network("pterodactyl_nw")  # Wings' settings
    assert (network["Driver"], network["Internal"], network["EnableIPv6"]) == ("bridge", False, True)
    assert network["IPAM"]["Config"] == [
        {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"},
        {"Subnet": "fdba:17c8:6c94::/64", "Gateway": "fdba:17c8:6c94::1011"},
    ]
    options = network["Options"]
    assert options["com.docker.network.bridge.name"] == "pterodactyl0"
    assert options["com.docker.network.bridge.enable_icc"] == "true"
    assert options["com.docker.network.driver.mtu"] == "1500"

    assert power(d, uuid, "stop")["status"] == "succeeded"


@pytest.mark.docker
def test_a_port_the_host_holds_fails_the_start_with_the_allocation_named(
    daemon_process, docker_uuids, docker_image, game
):
    d = daemon_process()
    for kind, proto in ((socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")):
        with socket.socket(socket.AF_INET, kind) as held:
            held.bind(("127.0.0.1", free_port()))  # free for TCP a moment ago: only `held` can be refused
            if kind == socket.SOCK_STREAM:
                held.listen()
            port = held.getsockname()[1]
            uuid = add(d, game_server(docker_uuids.new(), docker_image, port))
            place_game(game, d.folder / "var" / "volumes" / uuid)
            op = power(d, uuid, "start")
            assert op["status"] == "failed", op
            assert f"allocation 127.0.0.1:{port}/{proto} is already in use on this host" in op["reason"], op["reason"]
            with d.client() as c:
                assert c.get(f"/api/servers/{uuid}").json()["state"] == "offline"


@pytest.mark.docker
def test_network_mode_none_publishes_nothing(daemon_process, docker_uuids, docker_image, docker_engine, game):
    d = daemon_process(docker={"network": {"network_mode": "none"}})
    port = free_port()
    uuid = add(d, game_server(docker_uuids.new(), docker_image, port))
    place_game(game, d.folder / "var" / "volumes" / uuid)
    assert power(d, uuid, "start")["status"] == "succeeded"
    container = inspect_server_container(docker_engine, uuid)
    assert container["HostConfig"]["NetworkMode"] == "none"
    assert not container["HostConfig"]["PortBindings"] and not container["Config"].get("ExposedPorts")
    with pytest.raises(ConnectionRefusedError):  # the server listens inside; nothing leads there
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert power(d, uuid, "kill")["status"] == "succeeded"


# -- the door: an allocation IP the host does not have --------------------------------------------


def test_an_ip_that_is_not_the_hosts_is_a_422_and_nothing_is_recorded(daemon_process):
    port = free_port()
    listed = definition(allocations=allocations(port, FOREIGN))  # in the config file: skipped, said why
    fine = definition(allocations=allocations(port, "0.0.0.0"))
    d = daemon_process(servers=[listed, fine])
    refused = definition(allocations=allocations(port, FOREIGN))
    before = total_events(d)
    with d.client() as c:
        error = assert_json_error(c.post("/api/servers", json=refused), 422)
        assert f"{FOREIGN} is not an address of this host" in error, error
        assert c.get(f"/api/servers/{refused['settings']['uuid']}").status_code == 404
        assert c.get(f"/api/servers/{listed['settings']['uuid']}").status_code == 404
        assert c.get(f"/api/servers/{fine['settings']['uuid']}").status_code == 200
    assert total_events(d) == before
    assert FOREIGN in d.read_log()

    # The config file's definition changed to a foreign IP: the start's sync refuses it, unrecorded.
    uuid = fine["settings"]["uuid"]
    fine["settings"]["allocations"] = allocations(port, FOREIGN)
    d.servers = [fine]
    d.write_config()
    op = power(d, uuid, "start")
    assert op["status"] == "failed" and f"{FOREIGN} is not an address of this host" in op["reason"], op
    with d.client() as c:
        recorded = c.get(f"/api/servers/{uuid}").json()
    assert recorded["state"] == "offline"


def test_a_panels_definition_with_a_foreign_ip_is_refused(daemon_process):
    panel = PanelStandIn().start()
    try:
        d = daemon_process(**with_panel(panel))
        wait_events(d, "panel.inventory_reconciled")
        doc = definition(allocations=allocations(free_port(), FOREIGN))
        uuid = doc["settings"]["uuid"]
        panel.servers[uuid] = doc
        with d.client() as c:
            r = c.post("/api/servers", json={"uuid": uuid})
            assert r.status_code == 502 and FOREIGN in r.json()["error"], r.text
            assert c.get(f"/api/servers/{uuid}").status_code == 404
        [refused] = panel_events(d, "panel.server_refused")
        assert refused["data"]["uuid"] == uuid and refused["data"]["source"] == "create"
        assert f"{FOREIGN} is not an address of this host" in refused["data"]["reason"]
    finally:
        panel.stop()


def test_the_door_check_is_the_hosts_and_parsing_stays_pure():
    doc = {"settings": {"uuid": str(uuidlib.uuid4()), "allocations": allocations(25565, FOREIGN)}}
    cfg = parse_definition(doc)  # replaying history on any host takes it
    hosts = HostAddresses(["172.18.0.1"], read=lambda: {ipaddress.ip_address("192.0.2.2")})
    with pytest.raises(AddressNotOnHost, match=FOREIGN):
        hosts.admit(cfg)
    for ip in ("0.0.0.0", "::", "127.0.0.1", "127.0.0.9", "::1", "172.18.0.1", "192.0.2.2"):
        assert hosts.admit(parse_definition({"settings": {"uuid": cfg.uuid, "allocations": allocations(1, ip)}}))


# -- what is published where --------------------------------------------------------------------


def test_publishing_rules():
    doc = {
        "settings": {
            "uuid": str(uuidlib.uuid4()),
            "allocations": {
                "default": {"ip": "127.0.0.1", "port": 25565},
                "mappings": {"127.0.0.1": [25565], "192.0.2.2": [27015, 27015]},
            },
        }
    }
    cfg = parse_definition(doc)
    node = DockerConfig()
    exposed, bindings = published(cfg, node, container_network(cfg, node))
    assert sorted(exposed) == [(25565, "tcp"), (25565, "udp"), (27015, "tcp"), (27015, "udp")]
    assert bindings["25565/udp"] == [("127.0.0.1", 25565), ("172.18.0.1", 25565)]
    assert bindings["27015/tcp"] == [("192.0.2.2", 27015)]
    ispn = DockerConfig(network={"ispn": True})
    assert published(cfg, ispn, container_network(cfg, ispn))[1]["25565/tcp"] == [("127.0.0.1", 25565)]
    for mode in ("none", "host"):
        quiet = DockerConfig(network={"network_mode": mode})
        assert container_network(cfg, quiet) == mode and published(cfg, quiet, mode) == ([], {})
    legacy = DockerConfig(network_mode="none")  # a wingman config of before: still wins
    assert container_network(cfg, legacy) == "none"
    forced = parse_definition(
        {"settings": {**doc["settings"], "allocations": {**doc["settings"]["allocations"], "force_outgoing_ip": True}}}
    )
    assert container_network(forced, node) == "ip-127-0-0-1"
    assert container_network(forced, DockerConfig(network={"network_mode": "none"})) == "none"


def test_docker_refusals_for_a_taken_port_read_as_the_allocation():
    assert (
        port_taken(
            "driver failed programming external connectivity on endpoint wingman-x (ab12): Error starting "
            "userland proxy: listen tcp4 127.0.0.1:25565: bind: address already in use"
        )
        == "allocation 127.0.0.1:25565/tcp is already in use on this host"
    )
    assert (
        port_taken(
            "failed to bind port [::1]:25565/udp: Error starting userland proxy: listen udp6 [::1]:25565: "
            "bind: address already in use"
        )
        == "allocation [::1]:25565/udp is already in use on this host"
    )
    assert (
        port_taken("Bind for 0.0.0.0:8080 failed: port is already allocated")
        == "allocation 0.0.0.0:8080 is already in use on this host (by another container)"
    )
    assert port_taken("network pterodactyl_nw not found") is None


# -- the runtime by itself: networks of the test's own ------------------------------------------


def own_network() -> DockerConfig:
    """A node network no other test uses: its own name and subnets."""
    a, b = random.randrange(200, 250), random.randrange(0, 256)
    name = f"wm-test-{uuidlib.uuid4().hex[:10]}"
    return DockerConfig(
        network={
            "name": name,
            "network_mode": name,
            "interface": f"10.{a}.{b}.1",
            "interfaces": {
                "v4": {"subnet": f"10.{a}.{b}.0/24", "gateway": f"10.{a}.{b}.1"},
                "v6": {"subnet": f"fd{a:02x}:{b:02x}::/64", "gateway": f"fd{a:02x}:{b:02x}::1"},
            },
        }
    )


def spec(tmp_path: Path, uuid: str, image: str, game: Path, port: int, **alloc) -> LaunchSpec:
    config = parse_definition(
        {
            "settings": {
                "uuid": uuid,
                "invocation": f"exec ./game {port}",
                "runtime": "docker",
                "container": {"image": image},
                "allocations": allocations(port, **alloc),
            }
        }
    )
    place_game(game, tmp_path / uuid)
    return LaunchSpec(config=config, folder=tmp_path / uuid, environment={})


class Console(list):
    __call__ = list.append


def remove_network(url: str, name: str) -> None:
    """Removed unless gone already, or in use by another test's container (then it is that test's)."""
    try:
        sdk(url).remove_network(name)
    except docker.errors.APIError as exc:
        if exc.status_code not in (403, 404, 409):
            raise


@pytest.mark.docker
async def test_two_creators_at_once_both_succeed_and_make_one_network(docker_engine):
    node = own_network()
    name = node.network.name
    barrier = threading.Barrier(2)
    results: list[str] = []

    def ensure() -> None:  # two runtimes (two daemons), each its own client
        api = sdk(docker_engine)
        barrier.wait()
        results.append(Networks(node).ensure(api))

    try:
        await asyncio.gather(asyncio.to_thread(ensure), asyncio.to_thread(ensure))
        assert results == [name, name]
        found = [n for n in sdk(docker_engine).networks(names=[name]) if n["Name"] == name]
        assert len(found) == 1
        assert found[0]["IPAM"]["Config"][0] == {
            "Subnet": node.network.interfaces.v4.subnet,
            "Gateway": node.network.interfaces.v4.gateway,
        }
    finally:
        remove_network(docker_engine, name)


@pytest.mark.docker
async def test_a_deleted_network_is_made_again_at_the_next_start(
    tmp_path, docker_runtime, docker_uuids, docker_image, docker_engine, game
):
    node = own_network()
    name = node.network.name
    rt = await docker_runtime(docker_config=node)
    uuid, port = docker_uuids.new(), free_port()
    try:
        handle = await rt.launch(spec(tmp_path, uuid, docker_image, game, port), Console())
        assert await asyncio.to_thread(tcp_answer, "127.0.0.1", port) == b"tcp hello"
        first = (await asyncio.to_thread(sdk(docker_engine).inspect_network, name))["Id"]
        await handle.kill()
        await asyncio.wait_for(handle.wait(), WAIT)
        await asyncio.to_thread(sdk(docker_engine).remove_container, container_name(uuid), force=True)
        await asyncio.to_thread(remove_network, docker_engine, name)

        handle = await rt.launch(spec(tmp_path, uuid, docker_image, game, port), Console())  # the runtime had it
        assert await asyncio.to_thread(udp_answer, "127.0.0.1", port) == b"udp hello"
        assert (await asyncio.to_thread(sdk(docker_engine).inspect_network, name))["Id"] != first
        await handle.kill()
        await asyncio.wait_for(handle.wait(), WAIT)
    finally:
        await asyncio.to_thread(sdk(docker_engine).remove_container, container_name(uuid), force=True)
        await asyncio.to_thread(remove_network, docker_engine, name)


@pytest.mark.docker
async def test_a_named_network_that_does_not_exist_is_a_clear_refusal(
    tmp_path, docker_runtime, docker_uuids, docker_image, game
):
    missing = f"wm-missing-{uuidlib.uuid4().hex[:10]}"
    rt = await docker_runtime(docker_config=DockerConfig(network={"network_mode": missing}))
    with pytest.raises(
        RuntimeFailure,
        match=rf"the Docker network '{missing}' \(docker.network.network_mode\) "
        r"does not exist",
    ):
        await rt.launch(spec(tmp_path, docker_uuids.new(), docker_image, game, free_port()), Console())


@pytest.mark.docker
async def test_force_outgoing_ip_joins_wings_bridge_of_that_ip(
    tmp_path, docker_runtime, docker_uuids, docker_image, docker_engine, game
):
    rt = await docker_runtime()
    uuid, port = docker_uuids.new(), free_port()
    try:
        handle = await rt.launch(spec(tmp_path, uuid, docker_image, game, port, force_outgoing_ip=True), Console())
        assert await asyncio.to_thread(tcp_answer, "127.0.0.1", port) == b"tcp hello"
        container = await asyncio.to_thread(inspect_server_container, docker_engine, uuid)
        assert container["HostConfig"]["NetworkMode"] == "ip-127-0-0-1"
        network = await asyncio.to_thread(sdk(docker_engine).inspect_network, "ip-127-0-0-1")
        assert network["Options"]["com.docker.network.host_ipv4"] == "127.0.0.1"
        await handle.kill()
        await asyncio.wait_for(handle.wait(), WAIT)
    finally:
        await asyncio.to_thread(sdk(docker_engine).remove_container, container_name(uuid), force=True)
        await asyncio.to_thread(remove_network, docker_engine, "ip-127-0-0-1")
