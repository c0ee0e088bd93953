"""Image pulls (engine.environments.docker.images), beside the Docker start latency, which never
includes one (its server's image is local-only): what a pull adds to a start.

A real registry on 127.0.0.1 (Debian's `docker-registry`, tests/support/registry.py) holds the
test image plus one layer of random bytes. Each figure is the runtime's pre-boot pull
(`DockerRuntime.prepare`: the executor, the stream read and shaped into console lines) against
the SDK's `pull` of the same image in a thread, rounds interleaved:

- fresh: the image is not on the node (the layer is downloaded and extracted);
- current: it is, and the registry's is the same (what every start of a pulled image pays).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

from benchmarks.suite.figures import Figure

IMAGE = "local/busybox:test"
LAYER = 16 << 20  # bytes of the layer a fresh pull downloads
CURRENT_PER_FRESH = 5  # rounds of the already-current pull for each fresh one


async def _rounds(rounds: int, layer: int) -> dict[str, list[float]]:
    import docker

    from tests.support.registry import PushedImages, Registry, registry_tools_missing
    from wingman.engine.environments.base import LaunchSpec
    from wingman.engine.environments.docker.runtime import DockerRuntime
    from wingman.engine.servers.definition import parse_definition

    missing = registry_tools_missing()
    if missing is not None:
        raise RuntimeError(missing)
    sdk = docker.APIClient(version="auto", timeout=120)
    sdk.inspect_image(IMAGE)  # no image: the figure says so
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-pull-"))
    registry = Registry(folder / "registry").start()
    pushed = PushedImages(sdk, IMAGE)
    runtime = DockerRuntime()
    await runtime.open()
    out: dict[str, list[float]] = {"fresh": [], "bare_fresh": [], "current": [], "bare_current": []}
    try:
        image = await asyncio.to_thread(pushed.push, registry, "wingman-bench/pull", layer)
        repository, tag = image.rsplit(":", 1)
        config = parse_definition(
            {
                "settings": {
                    "uuid": str(uuidlib.uuid4()),
                    "invocation": "true",
                    "runtime": "docker",
                    "container": {"image": image},
                }
            }
        )
        spec = LaunchSpec(config=config, folder=folder, environment={})
        lines: list[str] = []

        async def ours() -> float:
            t0 = time.perf_counter()
            await runtime.prepare(spec, lines.append)
            return time.perf_counter() - t0

        async def bare() -> float:
            t0 = time.perf_counter()
            await asyncio.to_thread(sdk.pull, repository, tag)
            return time.perf_counter() - t0

        for _ in range(rounds):
            for kind, pull in (("bare_fresh", bare), ("fresh", ours)):
                await asyncio.to_thread(pushed.remove, image)
                out[kind].append(await pull())
        for _ in range(rounds * CURRENT_PER_FRESH):  # cheap, and noisy: more of them
            out["current"].append(await ours())
            out["bare_current"].append(await bare())
        assert not [line for line in lines if "could not be pulled" in line], lines
    finally:
        await runtime.close()
        await asyncio.to_thread(pushed.clean)
        registry.stop()
        sdk.close()
    return out


def pull_figures(smoke: bool) -> list[Figure]:
    rounds, layer = (2, 1 << 20) if smoke else (15, LAYER)
    names = (
        f"image pull, fresh ({layer >> 20} MiB layer from a registry on 127.0.0.1), median",
        "image pull, already current (each start of a pulled image), median",
    )
    try:
        r = asyncio.run(_rounds(rounds, layer))
    except Exception as exc:  # noqa: BLE001 - no engine, image or registry: the table says so
        error = f"not measured: {type(exc).__name__}: {str(exc)[:200]}"
        return [Figure(name, None, None, "ms", target_ratio=1.1, lower_is_better=True, error=error) for name in names]
    ms = {k: [x * 1000 for x in v] for k, v in r.items()}
    return [
        Figure(
            name,
            statistics.median(ms[kind]),
            statistics.median(ms[f"bare_{kind}"]),
            "ms",
            baseline_label="docker SDK pull of the same image, median",
            target_ratio=1.1,
            lower_is_better=True,
            raw={"wingman_ms": ms[kind], "bare_ms": ms[f"bare_{kind}"]},
        )
        for name, kind in zip(names, ("fresh", "current"), strict=False)
    ]
