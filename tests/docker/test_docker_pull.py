"""Image pulls at each start, as Wings does them (engine.environments.docker.images).

Against a real Docker engine and a real registry (tests/support/registry.py: Debian's
`docker-registry` on 127.0.0.1), through `wingman serve` and its websocket: a start pulls the
server's image and its console shows the pull in Wings' words; with the registry gone the local
copy is used and the console says so; with both gone the start fails with the reason; the
credentials of `docker.registries` are sent, and wrong ones fail the start. A registry that never
answers runs into `image_pull_timeout`; a `~` image is never pulled. The stream's parsing and the
bounds on what reaches the console are checked on made-up streams, without an engine.

Timeouts are upper bounds for waiting, never speed assertions.
"""

from __future__ import annotations

import asyncio

import docker
import pytest

from tests.support.docker_power import ECHO, docker_server
from tests.support.http import power
from tests.support.registry import PushedImages, SilentRegistry, SlowProxy, registries
from tests.support.waiting import eventually_async
from tests.support.websocket import authed
from wingman.api.websocket.frames import DAEMON_NOTE_PREFIX, DAEMON_NOTE_SUFFIX
from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.base import LaunchSpec
from wingman.engine.environments.docker import images
from wingman.engine.environments.docker.images import (
    PULL_FINISHED,
    PULL_STARTED,
    ImagePuller,
    ProgressLines,
    PullResult,
    local_name,
    messages,
)
from wingman.engine.servers.definition import parse_definition

WAIT = 120  # seconds: the longest a start (with its pull) may take before the test fails


# -- the stream and the console lines, on made-up streams ---------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_layer_status_and_few_progress_ticks():
    shown, clock = [], Clock()
    lines = ProgressLines(shown.append, clock, every=5)
    feed = [
        {"status": "Pulling from yolks", "id": "java_17"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
    ]
    for message in feed:
        assert lines.feed(message) is None
    for i in range(1, 1001):  # a large layer: a thousand byte-progress ticks over 20 s
        clock.now = i * 0.02
        lines.feed({"status": "Downloading", "progress": f"[=> ] {i}MB/1000MB", "id": "aaa"})
    lines.feed({"status": "Download complete", "id": "aaa"})
    lines.feed({"status": "Pull complete", "id": "aaa"})
    lines.feed({"status": "Already exists", "id": "bbb"})
    lines.feed({"status": "Digest: sha256:0123"})
    lines.feed({"status": "Status: Downloaded newer image for ghcr.io/pterodactyl/yolks:java_17"})
    ticks = [line for line in shown if line.startswith("aaa: Downloading")]
    assert ticks[0] == "aaa: Downloading [=> ] 1MB/1000MB"  # the status change, with its progress
    assert len(ticks) == 1 + 4  # then one tick every 5 s of the 20
    assert shown[:3] == ["java_17: Pulling from yolks", "aaa: Pulling fs layer", "bbb: Pulling fs layer"]
    assert shown[-5:] == [
        "aaa: Download complete",
        "aaa: Pull complete",
        "bbb: Already exists",
        "Digest: sha256:0123",
        "Status: Downloaded newer image for ghcr.io/pterodactyl/yolks:java_17",
    ]


def test_an_endless_stream_is_cut_short_and_escapes_are_dropped():
    shown = []
    lines = ProgressLines(shown.append, Clock())
    for i in range(images.MAX_LINES * 3):
        lines.feed({"status": f"Status: \x1b[2J{'x' * 1000} {i}"})
    assert len(shown) == images.MAX_LINES
    assert shown[-1] == "(the rest of the pull's progress is not shown)"
    assert all("\x1b" not in line and len(line) <= images.MAX_SHOWN for line in shown)


def test_an_error_in_the_stream_is_the_reason():
    lines = ProgressLines(lambda line: None, Clock())
    assert lines.feed({"errorDetail": {"message": "manifest unknown"}, "error": "other words"}) == "manifest unknown"
    assert lines.feed({"error": "toomanyrequests: rate limit"}) == "toomanyrequests: rate limit"
    assert lines.feed({"errorDetail": "not an object", "error": ""}) == "the pull failed"


def test_the_stream_is_parsed_whatever_its_chunks_and_garbage():
    stream = (
        b'{"status":"Pulling fs layer","id":"aaa"}\r\n'
        b"not json at all\r\n"
        b'["a", "list"]\r\n'
        b"\r\n"
        b'{"status":"Downloading","id":"aaa"}\r\n'
        + b'{"status":"'
        + b"y" * (images.MAX_MESSAGE + 10)
        + b'"}\r\n'
        + b'{"error":"boom","errorDetail":{"message":"boom"}}\r\n'
        + b'{"status":"no newline at the end"}'
    )
    for size in (1, 7, 4096, len(stream)):  # the same stream cut every way
        chunks = (stream[i : i + size] for i in range(0, len(stream), size))
        assert list(messages(chunks)) == [
            {"status": "Pulling fs layer", "id": "aaa"},
            {"status": "Downloading", "id": "aaa"},
            {"error": "boom", "errorDetail": {"message": "boom"}},
            {"status": "no newline at the end"},
        ], size


def test_local_names():
    assert local_name("~local/busybox:test") == "local/busybox:test"
    assert local_name("ghcr.io/pterodactyl/yolks:java_17") == "ghcr.io/pterodactyl/yolks:java_17"
    assert images.local_only("~x") and not images.local_only("x~")


async def test_starts_of_one_image_share_its_pull_and_the_last_to_go_gives_it_up():
    release, calls = asyncio.Event(), []

    async def run(fn):  # stands for the runtime's executor: one call per pull that really runs
        calls.append(fn)
        await release.wait()
        return PullResult("img", pulled=True)

    puller = ImagePuller(run, DockerConfig(), max_workers=8)
    first, second = [], []
    a = asyncio.ensure_future(puller.ensure("img", first.append))
    b = asyncio.ensure_future(puller.ensure("img", second.append))
    await eventually_async(lambda: calls, 10, "the shared pull to run", interval=0)
    release.set()
    assert (await a).pulled and (await b).pulled
    assert len(calls) == 1
    assert first == second == [PULL_STARTED, PULL_FINISHED]

    release.clear()
    a = asyncio.ensure_future(puller.ensure("img", first.append))
    b = asyncio.ensure_future(puller.ensure("img", second.append))
    await eventually_async(lambda: len(calls) >= 2, 10, "the second pull to run", interval=0)
    flight = puller._flights["img"]
    a.cancel()
    await asyncio.gather(a, return_exceptions=True)
    assert not flight.cancel.cancelled  # one start still wants it
    b.cancel()
    await asyncio.gather(b, return_exceptions=True)
    assert flight.cancel.cancelled and "img" not in puller._flights  # a new start pulls afresh
    release.set()


# -- against a real engine and a real registry ------------------------------------------------


@pytest.fixture
def registry(tmp_path):
    yield from registries(lambda n: tmp_path / f"registry{n}")


@pytest.fixture
def pushed(docker_engine, docker_base_image):
    api = docker.APIClient(base_url=docker_engine, version="auto", timeout=60)
    images_ = PushedImages(api, docker_base_image)
    yield images_
    images_.clean()
    api.close()


def daemon_lines(frames: list[dict]) -> list[str]:
    """The daemon's own notes among a socket's frames, as text."""
    out = []
    for frame in frames:
        text = (frame.get("args") or [""])[0]
        if frame["event"] == "console output" and text.startswith(DAEMON_NOTE_PREFIX):
            out.append(text[len(DAEMON_NOTE_PREFIX) :].removesuffix(DAEMON_NOTE_SUFFIX))
    return out


async def start_and_watch(d, uuid: str) -> tuple[dict, list[str]]:
    """Start the server with its console open; its outcome, and the daemon's notes up to its end."""
    async with authed(d, uuid) as s:
        op = power(d, uuid, "start")
        outcome = await asyncio.to_thread(d.wait_operation, op["id"], WAIT)
        # Frames come in order: every note of the start is in before the state it ended in.
        end = "running" if outcome["status"] == "succeeded" else "offline"
        return outcome, daemon_lines(await s.until("status", end))


def kill(d, uuid: str) -> None:
    assert d.wait_operation(power(d, uuid, "kill")["id"], WAIT)["status"] == "succeeded"


def pull_lines(notes: list[str]) -> list[str]:
    """The notes from Wings' first pull line to its last, both included."""
    first = notes.index(PULL_STARTED)
    return notes[first : notes.index(PULL_FINISHED, first) + 1]


@pytest.mark.docker
async def test_a_start_pulls_its_image_falls_back_to_the_local_copy_and_fails_without_one(
    daemon_process, docker_uuids, registry, pushed
):
    reg = registry()
    image = pushed.push(reg, "wingman-tests/pulled")
    assert not pushed.present(image)
    uuid = docker_uuids.new()
    d = daemon_process(servers=[docker_server(uuid, image, ECHO)])

    outcome, notes = await start_and_watch(d, uuid)
    assert outcome["status"] == "succeeded", outcome
    assert pushed.present(image)
    pulled = pull_lines(notes)
    assert f"Status: Downloaded newer image for {image}" in pulled, notes
    assert any(line.endswith(": Pull complete") for line in pulled), notes  # the random layer came
    assert not [line for line in notes if "could not be pulled" in line], notes
    # Wings' order: the pull is done before the permissions step.
    assert notes.index(PULL_FINISHED) < notes.index(
        "Ensuring file permissions are set correctly, this could take a few seconds..."
    ), notes

    # The registry goes away; the image is still here: the start goes on with it, and says so.
    kill(d, uuid)
    reg.stop()
    assert not reg.answers()
    outcome, notes = await start_and_watch(d, uuid)
    assert outcome["status"] == "succeeded", outcome
    pulled = pull_lines(notes)
    (fallback,) = [line for line in pulled if "could not be pulled" in line]
    assert fallback.startswith(f"Image {image} could not be pulled (") and "connection refused" in fallback
    assert fallback.endswith("); using the local copy")

    # Both gone: the start fails, with the reason, in the outcome, the log and the console.
    kill(d, uuid)
    pushed.remove(image)
    outcome, notes = await start_and_watch(d, uuid)
    assert outcome["status"] == "failed", outcome
    assert f"image {image} could not be pulled (" in outcome["reason"], outcome
    assert "connection refused" in outcome["reason"] and "is not on this node" in outcome["reason"], outcome
    assert PULL_STARTED in notes and PULL_FINISHED not in notes[notes.index(PULL_STARTED) :], notes
    assert any(line.startswith("Pre-boot check 'environment' failed: image ") for line in notes), notes
    with d.client() as c:
        events = c.get(f"/api/servers/{uuid}/events", params={"limit": 1000}).json()["events"]
    (failed,) = [e for e in events if e["type"] == "preboot.check_failed"]
    assert failed["data"]["check"] == "environment" and "could not be pulled" in failed["data"]["reason"]


@pytest.mark.docker
async def test_registry_credentials_are_sent_by_image_prefix(daemon_process, docker_uuids, registry, pushed):
    reg = registry(users={"wingman": "s3cret-pass"})
    right = pushed.push(reg, "right/image")
    wrong = pushed.push(reg, "wrong/image")
    anonymous = pushed.push(reg, "anonymous/image")
    uuids = {name: docker_uuids.new() for name in ("right", "wrong", "anonymous")}
    servers = [
        docker_server(uuids["right"], right, ECHO),
        docker_server(uuids["wrong"], wrong, ECHO),
        docker_server(uuids["anonymous"], anonymous, ECHO),
    ]
    # Prefixes that do not overlap: the order of overlapping ones is the config file's (Wings' is
    # Go's random map order), and the test daemon's config file is written with sorted keys.
    right_creds = {"username": "wingman", "password": "s3cret-pass"}
    d = daemon_process(
        servers=servers,
        docker={
            "registries": {
                "example.invalid/": {"username": "someone", "password": "else"},  # another registry's: never sent here
                f"{reg.host}/right/": right_creds,
                f"{reg.host}/wrong/": {"username": "wingman", "password": "not-the-password"},
            }
        },
    )  # anonymous/ matches none: no credentials are sent

    outcome, notes = await start_and_watch(d, uuids["right"])
    assert outcome["status"] == "succeeded", outcome
    assert f"Status: Downloaded newer image for {right}" in pull_lines(notes)
    assert pushed.present(right)

    # The engine's words: the registry's refusal of the wrong password; its own for no credentials.
    for name, image, why in (("wrong", wrong, "unauthorized"), ("anonymous", anonymous, "no basic auth credentials")):
        outcome, notes = await start_and_watch(d, uuids[name])
        assert outcome["status"] == "failed", outcome
        assert f"image {image} could not be pulled (" in outcome["reason"] and why in outcome["reason"], outcome
        assert not pushed.present(image)


def spec_for(tmp_path, uuid: str, image: str) -> LaunchSpec:
    config = parse_definition(
        {"settings": {"uuid": uuid, "invocation": ECHO, "runtime": "docker", "container": {"image": image}}}
    )
    return LaunchSpec(config=config, folder=tmp_path / uuid, environment={})


@pytest.mark.docker
async def test_a_registry_that_never_answers_runs_into_the_pull_timeout(
    tmp_path, docker_runtime, docker_uuids, docker_base_image, docker_engine
):
    silent = SilentRegistry()
    api = docker.APIClient(base_url=docker_engine, version="auto", timeout=60)
    image = f"{silent.host}/hangs/image:1"
    repository, tag = image.rsplit(":", 1)
    api.tag(docker_base_image, repository, tag)  # a local copy to fall back to
    try:
        rt = await docker_runtime(docker_config=DockerConfig(image_pull_timeout=1))
        notes = []
        await asyncio.wait_for(rt.prepare(spec_for(tmp_path, docker_uuids.new(), image), notes.append), WAIT)
        assert notes[0] == PULL_STARTED and notes[-1] == PULL_FINISHED, notes
        (fallback,) = [line for line in notes if "could not be pulled" in line]
        assert "within 1 s" in fallback and fallback.endswith("; using the local copy"), fallback
        assert silent.accepted, "the engine never asked the registry"
    finally:
        silent.close()
        api.remove_image(image)
        api.close()


@pytest.mark.docker
async def test_a_local_only_image_is_never_pulled(tmp_path, docker_runtime, docker_uuids, docker_base_image):
    rt = await docker_runtime()
    notes = []
    await rt.prepare(spec_for(tmp_path, docker_uuids.new(), "~" + docker_base_image), notes.append)
    assert notes == []  # not even Wings' lines: nothing is pulled (docker.io is not asked)


@pytest.mark.docker
async def test_a_start_given_up_mid_pull_gives_the_pull_up(tmp_path, docker_runtime, docker_uuids, registry, pushed):
    reg = registry()
    proxy = await SlowProxy(reg.host).start()  # 8 MiB at 64 KiB/s: two minutes of download
    image = pushed.push(reg, "slow/image", size=8 << 20).replace(reg.host, proxy.host, 1)
    try:
        rt = await docker_runtime()
        notes = []
        start = asyncio.ensure_future(rt.prepare(spec_for(tmp_path, docker_uuids.new(), image), notes.append))

        await eventually_async(
            lambda: any(": Downloading" in line for line in notes), WAIT, lambda: f"the download under way: {notes}"
        )
        flight = rt._images._flights[image]
        start.cancel()  # as a kill cancels the start it preempts
        with pytest.raises(asyncio.CancelledError):
            await start
        # The worker thread's blocked read is woken (well before the download could end), and
        # the thread is free again.
        with pytest.raises(images.PullCancelled):
            await asyncio.wait_for(flight.task, 30)
        assert PULL_FINISHED not in notes and not pushed.present(image)

        # The engine gives its download up once its client has gone.
        await eventually_async(lambda: proxy.closed, WAIT, "the engine to drop its download")
    finally:
        await proxy.close()
