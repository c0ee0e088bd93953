"""A yolk runs its own entrypoint, which reads STARTUP, as under Wings (engine.environments.docker.spec
says when wingman runs `/bin/sh -c` instead). The image is built here, FROM the test image, with an
entrypoint.sh doing what the yolks' does: cd into /home/container, turn `{{VAR}}` into `${VAR}`,
echo the command and eval it. Yolks declare it either way: behind an ENTRYPOINT, or as their CMD
(java_*, without an ENTRYPOINT)."""

from __future__ import annotations

import io
import tarfile
import uuid as uuidlib

import docker
import pytest

from tests.support.docker_power import (
    ECHO,
    WAIT,
    DockerHarness,
    console_shows,
    docker_server,
    inspect,
    remove_server_container,
    started_running,
)
from wingman.engine.environments.docker.spec import runs_own_command

ENTRYPOINT_SH = b"""#!/bin/sh
cd /home/container || exit 1
PARSED=$(echo "$STARTUP" | sed -e 's/{{/${/g' -e 's/}}/}/g')
echo ":/home/container$ $PARSED"
eval "$PARSED"
"""
# How the image declares its entrypoint.sh: a Dockerfile line, and the container's Entrypoint and Cmd.
DECLARED = {
    "entrypoint": ('ENTRYPOINT ["/bin/sh", "/entrypoint.sh"]', ["/bin/sh", "/entrypoint.sh"], None),
    "cmd": ('CMD ["/bin/sh", "/entrypoint.sh"]', None, ["/bin/sh", "/entrypoint.sh"]),
}


def context(base: str, declaration: str) -> io.BytesIO:
    """A build context in memory: the Dockerfile and entrypoint.sh."""
    dockerfile = f"FROM {base}\nCOPY entrypoint.sh /entrypoint.sh\n{declaration}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("entrypoint.sh", ENTRYPOINT_SH)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture(params=sorted(DECLARED))
def yolk(request, docker_engine, docker_base_image, docker_uuids):
    """(tag, how it declares its entrypoint): a yolk-like image, removed after the test with the
    containers of the test's servers (they use it)."""
    declaration = DECLARED[request.param][0]
    client = docker.DockerClient(base_url=docker_engine, version="auto", timeout=120)
    tag = f"local/wingman-yolk-test:{uuidlib.uuid4().hex[:10]}"
    client.images.build(fileobj=context(docker_base_image, declaration), custom_context=True, tag=tag, rm=True)
    yield tag, request.param
    for uuid in docker_uuids.issued:
        remove_server_container(docker_engine, uuid)
    client.images.remove(tag, force=True)
    client.close()


@pytest.mark.docker
async def test_a_yolk_boots_from_startup_through_its_own_entrypoint(tmp_path, yolk, docker_uuids, docker_engine):
    tag, declared = yolk
    uuid = docker_uuids.new()
    invocation = "echo listening on {{SERVER_PORT}} as {{GAME_MODE}} in $(pwd); " + ECHO
    # `~`: Wings' local-only image, never pulled (there is no registry for it), run by its own name.
    d = docker_server(
        uuid,
        f"~{tag}",
        invocation,
        done=("listening on 27015",),
        env={"GAME_MODE": "survival"},
        allocations={"default": {"ip": "127.0.0.1", "port": 27015}, "mappings": {}},
    )
    async with DockerHarness(tmp_path, [d], {"network": {"network_mode": "none"}, "log_config": {"type": ""}}) as h:
        await started_running(h, uuid)  # its done-line is the substituted one
        await console_shows(h, uuid, "listening on 27015 as survival in /home/container")
        assert (
            ":/home/container$ echo listening on ${SERVER_PORT} as ${GAME_MODE} in $(pwd); " + ECHO
            in h.processes.console(uuid).lines
        )  # the entrypoint's echo: STARTUP came through untouched
        await h.processes.send_command(uuid, "hello")
        await console_shows(h, uuid, "echo hello")  # stdin reaches the server behind the entrypoint

        container = await inspect(docker_engine, uuid)
        _, entrypoint, cmd = DECLARED[declared]
        assert container["Config"]["Entrypoint"] == entrypoint and container["Config"]["Cmd"] == cmd
        assert container["Config"]["Image"] == tag
        assert f"STARTUP={invocation}" in container["Config"]["Env"]
        # log_config.type "": the engine's own default driver.
        engine_default = docker.APIClient(base_url=docker_engine, version="auto").info()["LoggingDriver"]
        assert container["HostConfig"]["LogConfig"]["Type"] == engine_default
        assert (await h.outcome(await h.act(uuid, "stop"), WAIT)).status == "succeeded"


@pytest.mark.parametrize(
    "image_config, own",
    [
        ({"Entrypoint": ["/usr/bin/tini", "-g", "--"], "Cmd": ["/entrypoint.sh"]}, True),  # a yolk behind tini
        ({"Entrypoint": None, "Cmd": ["/bin/bash", "/entrypoint.sh"]}, True),  # java_* yolks
        ({"Entrypoint": None, "Cmd": None}, False),  # an imported busybox: Docker would refuse to create it
        ({"Entrypoint": None, "Cmd": ["/bin/sh"]}, False),  # alpine: a shell reading stdin, never STARTUP
        ({"Cmd": ["bash"]}, False),  # debian
        (None, False),
    ],
)
def test_when_the_image_runs_its_own_command(image_config, own):
    assert runs_own_command(image_config) is own
