"""A hostile game server in a real container: it runs as its own unprivileged user with Wings'
hardening, as `docker inspect` shows, and from inside finds no capability, no way back to root,
no writable root filesystem and nothing of the daemon; it can use its own folder and /tmp."""

from __future__ import annotations

import pytest

from tests.support.docker_power import ECHO, WAIT, console_shows, docker_server, inspect, started_running
from wingman.engine.environments.docker.policy import DROPPED_CAPABILITIES
from wingman.engine.environments.docker.spec import WORKDIR

pytestmark = pytest.mark.docker

PROBE = (
    'echo "ids $(id -u):$(id -g) groups $(id -G)"; '
    "grep -E '^(CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs):' /proc/self/status; "
    "touch /planted 2>/dev/null && echo 'root: writable' || echo 'root: read-only'; "
    "echo x > /tmp/scratch && echo 'tmp: writable'; "
    "echo mine > /home/container/mine.txt && echo 'folder: writable'; "
    'for p in /var/run/docker.sock {private}; do [ -e $p ] && echo "visible: $p"; done; '
    "echo probed; "
)


async def test_a_container_runs_as_its_own_user_with_wings_hardening_and_reaches_nothing(
    engine_harness, docker_uuids, docker_image, docker_engine, tmp_path
):
    uuid = docker_uuids.new()
    root = tmp_path / "var"  # the harness's root directory: the daemon's database and key live there
    private = " ".join(str(p) for p in (root, root / "wingman.db", root / "checkpoint-key.pem"))
    async with engine_harness(
        [docker_server(uuid, docker_image, PROBE.format(private=private) + ECHO, done=("probed",))]
    ) as h:
        await started_running(h, uuid)
        await console_shows(h, uuid, "probed")
        container = await inspect(docker_engine, uuid)
        host = container["HostConfig"]
        user = container["Config"]["User"]
        uid, gid = (int(part) for part in user.split(":"))
        assert uid == gid and uid >= h.config.system.server_users.first_uid
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["ReadonlyRootfs"] is True
        assert host["Tmpfs"] == {"/tmp": "rw,exec,nosuid,size=100M"}
        assert host["PidsLimit"] == 512
        assert {c.lower().removeprefix("cap_") for c in host["CapDrop"]} == set(DROPPED_CAPABILITIES)
        folder = h.daemon.starter.folder(uuid)
        assert [(m["Type"], m["Source"], m["Destination"]) for m in container["Mounts"]] == [
            ("bind", str(folder.resolve()), WORKDIR)
        ]

        lines = list(h.processes.console(uuid).lines)
        assert f"ids {uid}:{gid} groups {gid}" in lines
        for field in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert f"{field}:\t0000000000000000" in lines, (field, lines)
        assert "NoNewPrivs:\t1" in lines
        assert "root: read-only" in lines and "tmp: writable" in lines and "folder: writable" in lines, "\n".join(lines)
        assert not [line for line in lines if line.startswith("visible:")]
        assert (folder / "mine.txt").stat().st_uid == uid and folder.stat().st_uid == uid
        assert (await h.outcome(await h.act(uuid, "kill"), WAIT)).status == "succeeded"
