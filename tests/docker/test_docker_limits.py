"""Every limit of a server's `build`, and Wings' housekeeping, on a real container: `docker inspect`
shows each as Wings maps it (environment/settings.go AsContainerResources, container.go Create),
and the kernel enforces what this machine can: memory (an OOM kill, recorded as the crash it is)
and pids (a fork loop stops). What the engine cannot apply is said at pre-boot."""

from __future__ import annotations

import uuid as uuidlib

import docker
import pytest
from structlog.testing import capture_logs

from tests.support.docker_power import (
    ECHO,
    WAIT,
    DockerHarness,
    console_shows,
    docker_server,
    inspect,
    of_type,
    sdk,
    started_running,
)
from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.docker.limits import container_resources, discarded, unenforced
from wingman.engine.servers.definition import parse_definition

# Every limit a definition can ask for; oom_disabled is set where the test needs it.
EVERY_LIMIT = {"memory_limit": 64, "swap": 32, "cpu_limit": 50, "threads": "0", "io_weight": 300, "pids_limit": 64}
ALLOCATION = {"default": {"ip": "127.0.0.1", "port": 25565}, "mappings": {}}
DNS = ["9.9.9.9", "149.112.112.112"]


@pytest.fixture
def bridge(docker_engine):
    """A bridge network of this test's own (not the node's default, which another suite may be
    creating and removing): its name and gateway. Containers left on it are removed with it."""
    client = sdk(docker_engine)
    name = f"wingman-limits-{uuidlib.uuid4().hex[:8]}"
    client.create_network(name, driver="bridge")
    gateway = client.inspect_network(name)["IPAM"]["Config"][0]["Gateway"]
    yield name, gateway
    for cid in client.inspect_network(name).get("Containers") or {}:
        try:
            client.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
    client.remove_network(name)
    client.close()


def on_bridge(name: str, gateway: str) -> dict:
    return {
        "network": {"name": name, "network_mode": name, "interface": gateway, "dns": DNS},
        "domainname": "games.example",
        "userns_mode": "host",
    }


@pytest.mark.docker
async def test_every_limit_and_wings_housekeeping_as_docker_inspect_shows_them(
    tmp_path, docker_uuids, docker_image, docker_engine, bridge
):
    name, gateway = bridge
    uuid = docker_uuids.new()
    probe = 'echo "ip $SERVER_IP port $SERVER_PORT host $(hostname)"; ' + ECHO
    d = docker_server(
        uuid,
        docker_image,
        probe,
        build={**EVERY_LIMIT, "oom_disabled": True},
        allocations=ALLOCATION,
        labels={"owner": "team-a", "Service": "not-pterodactyl"},
    )
    async with DockerHarness(tmp_path, [d], on_bridge(name, gateway)) as h:
        await started_running(h, uuid)
        await console_shows(h, uuid, f"ip {gateway} port 25565 host {uuid}")
        container = await inspect(docker_engine, uuid)
        host, config = container["HostConfig"], container["Config"]
        # Wings' units: MB of 10^6 bytes, times its overhead (15 % up to 2048 MB) for the hard limit;
        # the limit itself reserved; swap on top of the hard limit; a CFS quota over 100 ms.
        assert host["Memory"] == 73_600_000 and host["MemoryReservation"] == 64_000_000
        assert host["MemorySwap"] == 32_000_000 + 73_600_000
        assert (host["CpuQuota"], host["CpuPeriod"], host["CpuShares"], host["NanoCpus"]) == (50_000, 100_000, 1024, 0)
        assert host["CpusetCpus"] == "0" and host["OomKillDisable"] is True and host["PidsLimit"] == 64
        blkio_kept = host["BlkioWeight"] == 300
        assert blkio_kept or host["BlkioWeight"] == 0  # 0: the kernel has no blkio weight (Docker warned)
        # Wings' housekeeping.
        assert config["Hostname"] == uuid and config["Domainname"] == "games.example"
        assert host["Dns"] == DNS and host["NetworkMode"] == name and host["UsernsMode"] == "host"
        assert host["LogConfig"] == {"Type": "local", "Config": DockerConfig().log_config.config}
        labels = {
            "owner": "team-a",
            "Service": "Pterodactyl",
            "ContainerType": "server_process",
            "wingman.server": uuid,
        }
        assert labels.items() <= config["Labels"].items()  # beside the image's own labels
        assert f"SERVER_IP={gateway}" in config["Env"] and "SERVER_PORT=25565" in config["Env"]
        assert config["Cmd"] == ["/bin/sh", "-c", probe]  # the test image declares nothing to run
        # Issue 24's hardening is kept.
        assert host["ReadonlyRootfs"] is True and host["SecurityOpt"] == ["no-new-privileges"]
        assert config["User"] != "" and not config["User"].startswith("0:")

        # The next start's pre-boot says what the engine dropped at this create.
        assert (await h.outcome(await h.act(uuid, "kill"), WAIT)).status == "succeeded"
        with capture_logs() as logs:
            await started_running(h, uuid)
        said = [e["warning"] for e in logs if e["event"] == "pre-boot warning" and e.get("server") == uuid]
        io_weight = "the Docker engine cannot apply io_weight on this kernel; io_weight is not enforced"
        assert (io_weight in said) is not blkio_kept, said
        assert (await h.outcome(await h.act(uuid, "kill"), WAIT)).status == "succeeded"


@pytest.mark.docker
async def test_pre_boot_warns_of_an_oom_killer_disabled_without_a_memory_limit(
    tmp_path, docker_runtime, docker_uuids, docker_image
):
    from wingman.engine.environments.base import LaunchSpec

    rt = await docker_runtime(docker_config=DockerConfig(network={"network_mode": "none"}))
    config = parse_definition(
        {
            "settings": {
                "uuid": docker_uuids.new(),
                "invocation": "true",
                "runtime": "docker",
                "container": {"image": docker_image},
                "build": {"oom_disabled": True},
            }
        }
    )
    warnings = await rt.check_limits(LaunchSpec(config=config, folder=tmp_path, environment={}))
    assert any(w.startswith("oom_disabled without a memory_limit") for w in warnings), warnings


# Ready at once; on any input line, `tail` holds a 64 MiB "line" of zeros, far past the 16 MB limit.
HUNGRY = "echo ready; read x; head -c 64m /dev/zero | tail"


@pytest.mark.docker
async def test_a_server_beyond_its_memory_is_oom_killed_and_its_history_says_so(
    tmp_path, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    build = {**EVERY_LIMIT, "memory_limit": 16, "swap": 0, "oom_disabled": False}
    d = docker_server(uuid, docker_image, HUNGRY, build=build)
    async with DockerHarness(tmp_path, [d], {"network": {"network_mode": "none"}}) as h:
        await started_running(h, uuid)
        await h.processes.send_command(uuid, "eat")
        await h.until_event(uuid, lambda e: e.type == "crash.decided", WAIT)
        crashed = (await of_type(h, uuid, "server.crashed"))[-1]
        assert crashed.data["oom_killed"] is True and crashed.data["exit_code"] == 137
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["oom_killed"] is True
        await h.wait_state(uuid, "offline", WAIT)  # restart policy `no`
        container = await inspect(docker_engine, uuid)
        assert container["State"]["OOMKilled"] is True and container["HostConfig"]["Memory"] == 18_400_000


@pytest.mark.docker
async def test_a_fork_loop_beyond_the_pids_limit_fails_to_fork(tmp_path, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    # Ready at once; on any input line, starts 40 sleeps where at most 20 processes may exist.
    forks = 'echo ready; read x; i=0; while [ $i -lt 40 ]; do sleep 600 & i=$((i+1)); echo "forked $i"; done'
    d = docker_server(uuid, docker_image, forks, build={**EVERY_LIMIT, "pids_limit": 20})
    async with DockerHarness(tmp_path, [d], {"network": {"network_mode": "none"}}) as h:
        await started_running(h, uuid)
        assert (await inspect(docker_engine, uuid))["HostConfig"]["PidsLimit"] == 20
        await h.processes.send_command(uuid, "fork")
        await console_shows(h, uuid, "can't fork")
        lines = list(h.processes.console(uuid).lines)
        assert "forked 10" in lines and "forked 40" not in lines, lines


def test_what_an_engine_cannot_apply_is_warned_of_for_what_the_definition_asks():
    """The kernels this machine does not have: `docker info` saying no, a HostConfig that lost some."""
    cfg = parse_definition(
        {
            "settings": {
                "uuid": str(uuidlib.uuid4()),
                "invocation": "x",
                "runtime": "docker",
                "container": {"image": "i"},
                "build": EVERY_LIMIT,
            }
        }
    )
    resources = container_resources(cfg, DockerConfig())
    assert (
        unenforced(
            cfg,
            resources,
            {
                k: True
                for k in ("MemoryLimit", "SwapLimit", "CpuCfsQuota", "CpuCfsPeriod", "CPUShares", "CPUSet", "PidsLimit")
            },
            set(),
        )
        == []
    )
    said = unenforced(cfg, resources, {"MemoryLimit": False, "CPUSet": False, "CpuCfsQuota": False}, {"blkio_weight"})
    assert sorted(w.split("; ")[1] for w in said) == [
        f"{name} is not enforced" for name in ("cpu_limit", "io_weight", "memory_limit", "threads")
    ]
    # Docker's HostConfig after a create on a kernel without blkio weight nor oom_kill_disable:
    kept = {
        "Memory": 73_600_000,
        "MemoryReservation": 64_000_000,
        "MemorySwap": 105_600_000,
        "CpuQuota": 50_000,
        "CpuPeriod": 100_000,
        "CpuShares": 1024,
        "CpusetCpus": "0",
        "BlkioWeight": 0,
        "PidsLimit": 64,
    }
    oom = container_resources(cfg.model_copy(update={"oom_disabled": True}), DockerConfig())
    assert discarded(oom, {**kept, "OomKillDisable": False}) == {"blkio_weight", "oom_kill_disable"}
    assert discarded(resources, {**kept, "BlkioWeight": 300, "OomKillDisable": False}) == set()
