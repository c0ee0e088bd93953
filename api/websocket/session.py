"""One websocket connection to one server, from `auth` to close.

Before a successful `auth`, every other message is answered `jwt error` (`jwt: no jwt present`)
and nothing is followed. The first successful `auth` answers `auth success`, `status` (the state
now) and `stats`, and starts following the server; a later one (the Panel refreshing its token)
answers `auth success` alone.

Why `status` frames neither skip nor repeat: following starts in one synchronous step that also
reads the current state, with no await in between, and the feed hands the socket each committed
`state.changed` after the registry folded it (engine.live.feed). So the first `status` is the state
after every change the socket will not be sent, and every later change is sent once, in commit
order. While the token may not be used (it expired, or its `jti` was denied), console lines and
stats are dropped, as Wings drops them, but `status` frames are held, up to the outbox's capacity,
and sent after the renewed `auth`: a Panel that refreshes its token misses no state change.
"""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from collections.abc import Callable

import structlog
from websockets.exceptions import ConnectionClosed

from wingman.api.websocket import frames
from wingman.api.websocket import permissions as perms
from wingman.api.websocket.hub import SocketHub
from wingman.api.websocket.inbound import HANDLERS, Answer
from wingman.api.websocket.limits import InboundLimiter, TokenBucket
from wingman.api.websocket.outbox import OVERFLOW_CODE, Outbox
from wingman.api.websocket.tokens import EXPIRED, NO_JWT, JwtRefused, SocketToken
from wingman.engine.config import Rate
from wingman.engine.console.buffer import DAEMON, OUTPUT
from wingman.engine.event_types import Cause, EventType
from wingman.engine.events import Metadata, RecordedEvent
from wingman.engine.install import feed as said
from wingman.engine.servers.registry import UnknownServer

log = structlog.get_logger("wingman.websocket")

GENERIC_ERROR = "an unexpected error was encountered while handling this request"
EXPIRING_SECONDS = 60  # `token expiring` goes out when this much or less is left
DRAIN_SECONDS = 5.0  # how long frames waiting may take to go out before a close we chose

# Encoded once for all the sockets that are handed the same event, line or document (a state
# change's `status` frame: the hub's, which knows the statechart).
stats_frame = frames.SharedFrame(lambda doc: frames.encode_json(frames.STATS, doc))
output_frame = frames.SharedFrame(lambda text: frames.encode(frames.CONSOLE_OUTPUT, text))
note_frame = frames.SharedFrame(frames.daemon_note)
install_frame = frames.SharedFrame(lambda text: frames.encode(frames.INSTALL_OUTPUT, text))
# An install as a websocket hears it (engine.install.feed): each kind is the frame's event.
INSTALL_FRAMES = {
    said.STARTED: frames.INSTALL_STARTED,
    said.MESSAGE: frames.DAEMON_MESSAGE,
    said.COMPLETED: frames.INSTALL_COMPLETED,
}


class Session:
    def __init__(self, hub: SocketHub, ws, uuid: str, remote_ip: str | None):
        self.id = str(uuidlib.uuid4())
        self.hub = hub
        self.node = hub.node
        self.ws = ws
        self.uuid = uuid
        self.remote_ip = remote_ip
        self.token: SocketToken | None = None
        self.limiter = InboundLimiter(hub.settings.rate_limits)
        lines = hub.settings.console_lines_per_second
        self._console_budget = TokenBucket(Rate(burst=lines, every=1 / lines))
        self._skipping = False  # console lines are being skipped (said once per episode)
        self.outbox = Outbox(ws.send, hub.settings.queue_frames, self._too_slow)
        self._held: list[str] = []  # status frames waiting for a renewed token
        self._told: str | None = None  # the token problem the client was told of
        self._follows: list[Callable[[], None]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: set[asyncio.Task] = set()  # what requests left to finish (see background)
        self._ending: asyncio.Future = asyncio.get_running_loop().create_future()
        self.log = log.bind(server=uuid, connection=self.id)

    # -- the connection ------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.hub.settings
        if not self.hub.count.take(self.uuid):
            self.ws.end_connection(
                OVERFLOW_CODE,
                f"too many websockets are open for this server (the limit is {settings.max_sockets_per_server})",
            )
            return
        self.hub.sessions.add(self)
        writer = asyncio.create_task(self.outbox.run(), name=f"ws-writer-{self.id}")
        reader = asyncio.create_task(self._read(), name=f"ws-reader-{self.id}")
        code, reason = 1000, ""
        try:
            await asyncio.wait({writer, reader, self._ending}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, writer):
                if (
                    task.done()
                    and not task.cancelled()
                    and task.exception() is not None
                    and not isinstance(task.exception(), ConnectionClosed)
                ):
                    self.log.error("websocket task failed", error=repr(task.exception()))
            if self._ending.done():
                code, reason, drain = self._ending.result()
                if drain and not writer.done():
                    self.outbox.finish()
                    await asyncio.wait({writer}, timeout=DRAIN_SECONDS)
        finally:
            self._unfollow()
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            self.hub.count.release(self.uuid)
            self.hub.sessions.discard(self)
        # A close frame written behind whatever the transport still holds, without waiting for a
        # slow reader to take it (the websocket layer drops the connection after its close timeout).
        self.ws.end_connection(code, reason)
        if code != 1000:
            self.log.info("websocket closed", code=code, reason=reason)

    def _too_slow(self, code: int, reason: str) -> None:
        self.hub.slow_readers_dropped += 1
        self.close(code, reason)

    def close(self, code: int, reason: str, drain: bool = False) -> None:
        """Ask for the connection to end (from anywhere, without waiting)."""
        if not self._ending.done():
            self._ending.set_result((code, reason, drain))

    async def _read(self) -> None:
        while True:
            message = await self.ws.recv()
            if message is not None:
                await self._receive(message)

    # -- inbound -------------------------------------------------------------------------------

    async def _receive(self, message: str | bytes) -> None:
        try:
            event, args = frames.decode(message)
        except frames.BadFrame as exc:
            if self._throttled(""):
                return
            self.answer(str(exc))
            return
        if self._throttled(event):
            return
        if event == frames.AUTH:
            await self.hub.admissions.turn()  # many at once would hold up everything else (admission.py)
            self._authenticate("".join(args))
            return
        problem = self.token_problem()
        if problem is not None:
            self.outbox.put(frames.encode(frames.JWT_ERROR, problem))
            return
        handler = HANDLERS.get(event)
        if handler is None:
            self.answer(f"{event!r} is not an event this daemon handles")
            return
        try:
            await handler(self, args)
        except Answer as exc:
            self.answer(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the client and logged with one id
            self.fail(event, exc)

    def _throttled(self, event: str) -> bool:
        refused = self.limiter.refuse(event)
        if refused is None:
            return False
        self.outbox.put(frames.encode(frames.THROTTLED, refused))
        return True

    def _authenticate(self, raw: str) -> None:
        try:
            token = self.hub.checker.admit(raw, self.uuid)
        except JwtRefused as exc:
            # A refused token changes nothing: a socket that was authenticated keeps its token.
            self.log.info("websocket token refused", reason=str(exc))
            self.outbox.put(frames.encode(frames.JWT_ERROR, str(exc)))
            return
        first = self.token is None
        self.token, self._told = token, None
        self._watch_expiry(token)
        self.outbox.put(frames.encode(frames.AUTH_SUCCESS))
        if first:
            self._follow()
        else:
            held, self._held = self._held, []
            for frame in held:
                self.outbox.put(frame)

    # -- outbound ------------------------------------------------------------------------------

    def _follow(self) -> None:
        """Start following the server and say where it stands, in one step (see the module doc)."""
        try:
            state = self.node.server(self.uuid).state
        except UnknownServer:
            self.close(1001, "server deleted")
            return
        node = self.node
        self._follows = [
            node.subscribe_events(self._on_event, self.uuid),
            node.subscribe_console(self.uuid, self._on_console),
            node.subscribe_stats(self.uuid, self._on_stats),
            node.subscribe_install(self.uuid, self._on_install),
        ]
        self.outbox.put(frames.encode(frames.STATUS, node.chart.panel_status(state)))
        self.outbox.put(frames.encode_json(frames.STATS, node.utilization(self.uuid)))

    def _unfollow(self) -> None:
        for stop in self._follows:
            stop()
        self._follows = []
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        for task in self._tasks:
            task.cancel()

    def background(self, coro) -> None:
        """Work a request leaves behind (waiting for a power action's outcome to report a
        refusal): it ends with the socket, and its failure is logged, never raised."""
        task = asyncio.create_task(coro, name=f"ws-request-{self.id}")
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.log.error("websocket background work failed", error=repr(t.exception()))

        task.add_done_callback(done)

    def _on_event(self, ev: RecordedEvent) -> None:
        if ev.type == EventType.STATE_CHANGED:
            # As a Panel knows states (the chart's `panel_status`): `installing` is `offline` to it,
            # so a change into or out of it is no `status` frame (`install started` says the rest).
            chart = self.node.chart
            if chart.panel_status(ev.data["to_state"]) != chart.panel_status(ev.data["from_state"]):
                self.deliver(self.hub.status_frame(ev), hold=True)
        elif ev.type == EventType.SERVER_DELETED:
            self.close(1001, "server deleted", drain=True)

    def _on_console(self, kind: str, text: str) -> None:
        if kind == OUTPUT:
            if not self._console_budget.allow():
                if not self._skipping:
                    self._skipping = True
                    self.deliver(
                        frames.daemon_note(
                            f"The server prints more than {self.hub.settings.console_lines_per_second} lines a second; "
                            "lines are skipped on this console (the server's logs keep them)."
                        )
                    )
                return
            self._skipping = False
            self.deliver(output_frame(text))
        elif kind == DAEMON:
            # As Wings sends its notes (pre-boot steps, crashes): console output, prefixed, which
            # the Panel's console shows in line with the server's output.
            self.deliver(note_frame(text))

    def _on_install(self, kind: str, text: str) -> None:
        """An install's frames, as Wings sends them: its output only to tokens that may see it."""
        if kind == said.OUTPUT:
            if self.token is not None and self.token.allows(perms.ADMIN_INSTALL):
                self.deliver(install_frame(text))
        else:
            self.deliver(frames.encode(INSTALL_FRAMES[kind], text))

    def _on_stats(self, document: dict) -> None:
        self.deliver(stats_frame(document))

    def deliver(self, frame: str, hold: bool = False) -> None:
        """Send a frame if the token may still be used; otherwise hold it (`status`) or drop it."""
        problem = self.token_problem()
        if problem is None:
            self.outbox.put(frame)
            return
        self._tell(problem)
        if hold:
            if len(self._held) >= self.outbox.capacity:
                self.close(OVERFLOW_CODE, "the token expired or was revoked and was not renewed")
            else:
                self._held.append(frame)

    def token_problem(self) -> str | None:
        if self.token is None:
            return NO_JWT
        return self.hub.checker.problem(self.token)

    def recheck_token(self) -> None:
        """After a denial: a socket whose token it revoked is told now, not at its next frame."""
        if self.token is not None and (problem := self.token_problem()) is not None:
            self._tell(problem)

    def _tell(self, problem: str) -> None:
        """Say once per token that it may no longer be used (the Panel then fetches a new one)."""
        if problem == self._told:
            return
        self._told = problem
        if problem == EXPIRED:
            self.outbox.put(frames.encode(frames.TOKEN_EXPIRED))
        else:
            self.outbox.put(frames.encode(frames.JWT_ERROR, problem))

    def _watch_expiry(self, token: SocketToken) -> None:
        for timer in self._timers:
            timer.cancel()
        loop = asyncio.get_running_loop()
        left = token.expires_at - time.time()

        def expiring() -> None:
            if self.token is token and self.token_problem() is None:
                self.outbox.put(frames.encode(frames.TOKEN_EXPIRING))

        def expired() -> None:
            if self.token is token:
                self._tell(self.token_problem() or EXPIRED)

        self._timers = [
            loop.call_later(max(0.0, left - EXPIRING_SECONDS), expiring),
            loop.call_later(max(0.0, left), expired),
        ]

    # -- answers -------------------------------------------------------------------------------

    def answer(self, text: str) -> None:
        """A refusal the client can act on (a permission it lacks, a busy lock): its text, to anyone."""
        error_id = str(uuidlib.uuid4())
        self.log.info("websocket request refused", error_id=error_id, reason=text)
        self.outbox.put(frames.encode(frames.DAEMON_ERROR, f"Error Event [{error_id}]: {text}"))

    def fail(self, event: str, exc: Exception) -> None:
        """An unexpected error: its text only for tokens with admin.websocket.errors, the id for all."""
        error_id = str(uuidlib.uuid4())
        self.log.error(
            "error handling a websocket event",
            websocket_event=event,
            error_id=error_id,
            error=str(exc) or type(exc).__name__,
            exc_info=exc,
        )
        shown = (
            (str(exc) or type(exc).__name__) if self.token and self.token.allows(perms.ADMIN_ERRORS) else GENERIC_ERROR
        )
        self.outbox.put(frames.encode(frames.DAEMON_ERROR, f"Error Event [{error_id}]: {shown}"))

    def metadata(self) -> Metadata:
        """Who asked, for the events a socket's request causes: the token's user, over the websocket."""
        return Metadata(
            actor=self.token.user if self.token else "anonymous",
            channel="websocket",
            source_ip=self.remote_ip,
            request_id=self.id,
            cause=Cause.OPERATOR,
        )
