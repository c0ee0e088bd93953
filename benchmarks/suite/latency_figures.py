"""Power latencies in the engine itself (no HTTP): a start from the request to `running`
committed, a kill from the request to `offline` committed, each against the bare operation on
the same command in the same run, rounds interleaved so both sides see the same machine.

- start (local process, no done-line): against `asyncio.create_subprocess_exec` of the same
  command as the daemon runs it (`/bin/sh -c <invocation>`);
- kill (local process): against SIGKILL plus wait of such a process;
- start (Docker): against the SDK's create plus start of the same container (engine.environments.
  docker.spec builds both: image, command, network mode `none` on both sides, limits, user,
  mounts, log driver; needs a Docker engine and the test image: .ci/docker.sh).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.suite.figures import Figure
from tests.support.daemon import TOKEN, definition
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.events import Metadata

META = Metadata(actor="bench", channel="bench", cause="operator")
COMMAND = "exec sleep 600"
IMAGE = "local/busybox:test"
DOCKER = {"network": {"network_mode": "none"}}  # no bridge to make or join, on either side


def _p(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


class _Committed:
    """When each server's state.changed to a given state was committed (seen by a subscriber)."""

    def __init__(self, daemon: Daemon):
        self.waiters: dict[tuple[str, str], asyncio.Future] = {}
        daemon.store.subscribe(self._on_commit)

    def expect(self, uuid: str, state: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiters[(uuid, state)] = fut
        return fut

    def _on_commit(self, events) -> None:
        now = time.perf_counter()
        for ev in events:
            if ev.type == "state.changed":
                fut = self.waiters.pop((ev.stream_id, ev.data["to_state"]), None)
                if fut is not None and not fut.done():
                    fut.set_result(now)


async def _engine(folder: Path, servers: list[dict], docker: dict | None = None) -> Daemon:
    cfg = parse_config(
        {"token": TOKEN, "system": {"root_directory": str(folder / "var")}, "servers": servers, "docker": docker or {}}
    )
    daemon = Daemon(cfg)
    await daemon.start()
    await asyncio.wait_for(daemon.recovery.done.wait(), 120)
    return daemon


async def _timed_action(daemon: Daemon, seen: _Committed, uuid: str, action: str, state: str) -> float:
    done = seen.expect(uuid, state)
    t0 = time.perf_counter()
    op = await daemon.power.request(uuid, action, None, META)
    t1 = await asyncio.wait_for(done, 60)
    await daemon.power.settled(op.id)
    return t1 - t0


async def _bare_start() -> tuple[float, asyncio.subprocess.Process]:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        COMMAND,
        start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return time.perf_counter() - t0, proc


async def _bare_kill(proc: asyncio.subprocess.Process) -> float:
    t0 = time.perf_counter()
    proc.kill()
    await proc.wait()
    return time.perf_counter() - t0


async def _local(rounds: int) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-latency-"))
    doc = definition(invocation=COMMAND, done=(), stop={"type": "signal", "value": "SIGKILL"})
    uuid = doc["settings"]["uuid"]
    daemon = await _engine(folder, [doc])
    seen = _Committed(daemon)
    out: dict[str, list[float]] = {"start": [], "kill": [], "bare_start": [], "bare_kill": []}
    try:
        for _ in range(rounds):
            t, proc = await _bare_start()
            out["bare_start"].append(t)
            out["bare_kill"].append(await _bare_kill(proc))
            out["start"].append(await _timed_action(daemon, seen, uuid, "start", "running"))
            out["kill"].append(await _timed_action(daemon, seen, uuid, "kill", "offline"))
    finally:
        await daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _baseline_kwargs(sdk, daemon: Daemon, uuid: str) -> dict:
    """`create_container` arguments for the SDK's side: the very container wingman creates for the
    server (its network mode, limits, user, mounts, tmpfs, log driver, hardening), under no name and
    without wingman's label, so the comparison is Docker's work for the same container."""
    from wingman.engine.environments.base import LaunchSpec
    from wingman.engine.environments.docker.spec import LABEL, container_spec
    from wingman.engine.servers.environment import server_environment

    config, cfg = daemon.registry.config(uuid), daemon.config
    spec = LaunchSpec(
        config=config,
        folder=daemon.starter.folder(uuid),
        environment=server_environment(config, cfg.system.timezone),
        user=daemon.starter.users.for_server(uuid),
    )
    kwargs = container_spec(sdk, spec, cfg.docker)
    kwargs["labels"] = {k: v for k, v in kwargs["labels"].items() if k != LABEL}
    kwargs.pop("name")
    return kwargs


async def _docker(rounds: int) -> dict[str, list[float]]:
    import docker

    sdk = docker.APIClient(version="auto")
    sdk.inspect_image(IMAGE)  # no image: the figure says so
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-docker-"))
    # `~`: local-only, as a node without a registry for its image names it; otherwise every start
    # would first try (and fail) to pull it. Pulls have figures of their own (pull_figures).
    doc = definition(
        invocation=COMMAND,
        done=(),
        runtime="docker",
        container={"image": f"~{IMAGE}"},
        stop={"type": "signal", "value": "SIGKILL"},
    )
    uuid = doc["settings"]["uuid"]
    daemon = await _engine(folder, [doc], DOCKER)
    seen = _Committed(daemon)
    out: dict[str, list[float]] = {"start": [], "bare_start": []}

    def bare(kwargs: dict) -> float:
        t0 = time.perf_counter()
        c = sdk.create_container(**kwargs)
        sdk.start(c["Id"])
        took = time.perf_counter() - t0
        sdk.remove_container(c["Id"], force=True)
        return took

    try:
        # One start first, untimed: it makes the server's folder (the baseline mounts it too) and
        # warms both sides alike.
        await _timed_action(daemon, seen, uuid, "start", "running")
        await _timed_action(daemon, seen, uuid, "kill", "offline")
        kwargs = _baseline_kwargs(sdk, daemon, uuid)
        for _ in range(rounds):
            out["bare_start"].append(await asyncio.to_thread(bare, kwargs))
            out["start"].append(await _timed_action(daemon, seen, uuid, "start", "running"))
            await _timed_action(daemon, seen, uuid, "kill", "offline")
    finally:
        await daemon.stop()
        try:
            sdk.remove_container(f"wingman-{uuid}", force=True)
        except docker.errors.NotFound:
            pass
        shutil.rmtree(folder, ignore_errors=True)
    return out


# Enough rounds for a p99 to be one: of 60 kills, the "p99" was the slowest one alone, and a
# single stall of the disk (26 ms, the other 59 at most 5.8 ms) decided the figure.
LOCAL_ROUNDS, DOCKER_ROUNDS = 200, 40


def latency_figures(smoke: bool) -> list[Figure]:
    rounds = 5 if smoke else LOCAL_ROUNDS
    r = asyncio.run(_local(rounds))
    ms = {k: [x * 1000 for x in v] for k, v in r.items()}
    start, bare_start = statistics.median(ms["start"]), statistics.median(ms["bare_start"])
    figures = [
        Figure(
            "start latency, local process, median, minus bare (request -> running)",
            start - bare_start,
            None,
            "ms",
            baseline_label=f"bare create_subprocess_exec median {bare_start:.2f} ms",
            target_value=10,
            lower_is_better=True,
            raw={"wingman_ms": ms["start"], "bare_ms": ms["bare_start"], "wingman_median": start},
        ),
        Figure(
            "kill latency, local process, p99 (request -> offline committed)",
            _p(ms["kill"], 0.99),
            _p(ms["bare_kill"], 0.99),
            "ms",
            baseline_label="bare SIGKILL + wait p99",
            target_value=20,
            lower_is_better=True,
            raw={"wingman_ms": ms["kill"], "bare_ms": ms["bare_kill"], "wingman_median": statistics.median(ms["kill"])},
        ),
    ]
    rounds = 3 if smoke else DOCKER_ROUNDS
    try:
        d = asyncio.run(_docker(rounds))
        ours, base = statistics.median(d["start"]) * 1000, statistics.median(d["bare_start"]) * 1000
        figures.append(
            Figure(
                "Docker start latency, median (request -> running)",
                ours,
                base,
                "ms",
                baseline_label="docker SDK create + start of the same container, median",
                target_ratio=1.1,
                lower_is_better=True,
                raw={k: [x * 1000 for x in v] for k, v in d.items()},
            )
        )
    except Exception as exc:  # noqa: BLE001 - no engine or no image: the table says so
        figures.append(
            Figure(
                "Docker start latency, median (request -> running)",
                None,
                None,
                "ms",
                target_ratio=1.1,
                lower_is_better=True,
                error=f"not measured: {type(exc).__name__}: {str(exc)[:200]}",
            )
        )
    return figures
