"""The one thread that watches every wingman container's exit: Docker's events stream
(`type=container`, `label=wingman.server`, `die`/`oom`/`destroy`), whatever the number of
containers.

Events are handed to the event loop with `call_soon_threadsafe`. When the engine goes away the
thread retries with backoff; once subscribed again it says so on the loop, and the runtime asks
every live handle to check its container (exits missed while away are found by inspection).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import requests
import structlog
from docker.errors import DockerException

from wingman.engine.environments.docker.sdk import DockerAPI, DockerEvent, EventStream
from wingman.engine.environments.docker.spec import LABEL

log = structlog.get_logger("wingman.docker")

WATCH_FILTERS = {"type": "container", "label": LABEL, "event": ["die", "oom", "destroy"]}
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0


class EventsWatcher:
    def __init__(
        self,
        client: Callable[[], DockerAPI],
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[DockerEvent], None],
        on_subscribed: Callable[[], None],
        on_lost: Callable[[BaseException | str], str],
    ):
        self._client = client  # makes an SDK client of its own: the stream holds a connection for good
        self._loop = loop
        self._on_event = on_event  # called on the loop with each event
        self._on_subscribed = on_subscribed  # called on the loop once (re)subscribed
        self._on_lost = on_lost  # called in the thread with why the stream was lost; returns the words
        self._stop = threading.Event()
        self._stream: EventStream | None = None  # the current stream, closed by stop() to end the thread
        self._stream_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="wingman-docker-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (closing the stream it reads); `join` waits for it."""
        with self._stream_lock:  # the thread may be subscribing right now: see _run
            self._stop.set()
            stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - the stream may already be broken
                pass

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        api: DockerAPI | None = None
        while not self._stop.is_set():
            try:
                api = api or self._client()
                stream = api.events(decode=True, filters=WATCH_FILTERS)
                with self._stream_lock:
                    if self._stop.is_set():  # stop() came while we were subscribing
                        stream.close()
                        return
                    self._stream = stream
                # Subscribed: anything that happened before is found by inspection, after by events.
                self._loop.call_soon_threadsafe(self._on_subscribed)
                backoff = BACKOFF_FIRST
                for event in stream:
                    self._loop.call_soon_threadsafe(self._on_event, event)
                reason = self._on_lost("the events stream ended")
            except (DockerException, requests.exceptions.RequestException, OSError) as exc:
                reason = self._on_lost(exc)
                api = None
            except RuntimeError:  # the loop is closed: nobody is listening any more
                return
            except Exception as exc:
                log.exception("docker events watcher failed")
                reason, api = self._on_lost(repr(exc)), None
            finally:
                self._stream = None
            if self._stop.is_set():
                return
            # Say it once per outage: a node without Docker would otherwise log this forever.
            (log.warning if backoff == BACKOFF_FIRST else log.debug)(
                "docker events stream lost; retrying", reason=reason
            )
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)
