"""What a boot finds of the containers an earlier daemon left (blocking SDK calls, run in the
runtime's executor): a running one to adopt, one to reap (stopped, or killed here because it may
not run unsupervised), and every wingman container's facts for the reconciliation that follows
the engine coming back."""

from __future__ import annotations

import socket
import time
from typing import NotRequired, TypedDict

from docker.errors import NotFound

from wingman.engine.environments.base import ExitInfo
from wingman.engine.environments.docker.attach import take_attach_socket
from wingman.engine.environments.docker.handle import REMOVED
from wingman.engine.environments.docker.sdk import ContainerInspect, DockerAPI
from wingman.engine.environments.docker.spec import ATTACH, LABEL, container_name, quiet

KILL_CHECKS = 50  # inspections, 0.1 s apart, that a reaped container's kill gets to take effect


class ContainerFacts(TypedDict):
    """A wingman container's facts for the reconciliation after the engine comes back."""

    running: bool
    exit_code: int | None
    oom_killed: bool
    id: NotRequired[str]  # the caller's, to inspect the stopped ones; gone from what it hands on


def running_to_adopt(api: DockerAPI, name: str) -> tuple[ContainerInspect, socket.socket, bytes] | None:
    """(state, attach socket, bytes already read) of the running container `name`, else None."""
    try:
        state = api.inspect_container(name)
    except NotFound:
        return None
    if not state["State"].get("Running"):
        return None
    sock, leftover = take_attach_socket(api.attach_socket(state["Id"], ATTACH))
    return state, sock, leftover


def reap(api: DockerAPI, name: str, started_id: str | None) -> ExitInfo:
    """How the container a server last started ended; killed first when it still runs."""
    try:
        state = api.inspect_container(name)
    except NotFound:
        return REMOVED
    if started_id and started_id != state["Id"]:
        return REMOVED  # the container we started was replaced by another one
    if state["State"].get("Running"):
        quiet(api.kill, state["Id"])  # not adopted: it must not run unsupervised
        for _ in range(KILL_CHECKS):  # the kill is asynchronous on some engine versions
            state = api.inspect_container(state["Id"])
            if not state["State"].get("Running"):
                break
            time.sleep(0.1)
    st = state["State"]
    return ExitInfo(st.get("ExitCode"), oom_killed=bool(st.get("OOMKilled")))


def wingman_containers(api: DockerAPI) -> dict[str, ContainerFacts]:
    """uuid -> {"running", "exit_code", "oom_killed", "id"} for each container named and labelled
    as a wingman server's (exit facts filled in by the caller for the stopped ones)."""
    out: dict[str, ContainerFacts] = {}
    for summary in api.containers(all=True, filters={"label": LABEL}):
        uuid = (summary.get("Labels") or {}).get(LABEL)
        if not uuid or summary.get("Names", [""])[0].lstrip("/") != container_name(uuid):
            continue
        running = summary.get("State") == "running"
        out[uuid] = {"running": running, "exit_code": None, "oom_killed": False, "id": summary["Id"]}
    return out
