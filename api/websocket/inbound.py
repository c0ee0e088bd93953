"""What a socket may ask once authenticated: `set state`, `send logs`, `send stats`, `send command`.

A handler raises `Answer` for a refusal the user can act on (a missing permission, a busy power
lock, a suspended server, a command that is not one line): its text goes to the client whatever
its permissions, as Wings sends its lock message. Any other exception is an unexpected error,
reported with an id (see Session.fail).
"""

from __future__ import annotations

from typing import Any, Protocol

from wingman.api.requests import POWER_ACTION_ERROR
from wingman.api.websocket import frames
from wingman.api.websocket import permissions as perms
from wingman.api.websocket.hub import SocketHub
from wingman.engine.environments.base import RuntimeFailure
from wingman.engine.event_types import EventType
from wingman.engine.events import ACTIONS
from wingman.engine.node import Node
from wingman.engine.power.outcomes import INSTALLING_MESSAGE, SUSPENDED_MESSAGE, ServerInstalling, SuspendedServer
from wingman.engine.power.processes import NotRunning
from wingman.engine.servers.operations import OUTCOME_TYPES
from wingman.engine.servers.patterns import console_line_problem


class Session(Protocol):
    """What a handler uses of the socket's session (api.websocket.session.Session)."""

    uuid: str
    token: Any
    node: Node
    hub: SocketHub
    log: Any

    def deliver(self, frame: str, hold: bool = False) -> None: ...

    def metadata(self): ...

    def answer(self, text: str) -> None: ...

    def background(self, coro) -> None: ...


# Wings' text, word for word: the Panel shows it as it is.
LOCK_BUSY = "another power action is currently being processed for this server, please try again later"
HANDOVER_WAIT = 1  # seconds a socket's power action may wait for a lock whose holder only records its outcome
NOT_RUNNING = "Cannot send commands to a stopped server instance."
REJECTED = OUTCOME_TYPES[EventType.POWER_REJECTED]


class Answer(Exception):
    """A refusal meant for the client, in words it can act on."""


def _needs(session: Session, permission: str, what: str) -> None:
    if not session.token.allows(permission):
        raise Answer(f"You do not have permission to {what}: the token does not grant {permission}.")


async def set_state(session: Session, args: list[str]) -> None:
    action = "".join(args).strip()
    if action not in ACTIONS:
        raise Answer(POWER_ACTION_ERROR)
    _needs(session, perms.POWER[action], f"{action} this server")
    node = session.node
    # An install holds the lock too: said in Wings' words for it (a kill included), not as a busy lock.
    if node.installing(session.uuid):
        raise Answer(INSTALLING_MESSAGE)
    # Wings' websocket refuses at once rather than queue behind the lock; a kill never needs it.
    if action != "kill" and node.lock_busy(session.uuid):
        raise Answer(LOCK_BUSY)
    try:
        # The operation takes the lock within HANDOVER_WAIT or is rejected (and recorded so): a
        # lock that is not busy is free now, or as soon as its holder's outcome is recorded.
        op = await node.request_power(session.uuid, action, HANDOVER_WAIT, session.metadata())
    except SuspendedServer:
        raise Answer(SUSPENDED_MESSAGE) from None
    except ServerInstalling:
        raise Answer(INSTALLING_MESSAGE) from None
    session.log.info("power action over the websocket", action=action, operation=op.id, actor=session.token.user)
    session.background(_report_refusal(session, op.id, action))


async def _report_refusal(session: Session, op_id: str, action: str) -> None:
    """Wings answers an action it will not carry out (a `start` of a running server: "server is
    running") with a `daemon error`. Here the engine decides in the background, so the socket
    waits for the operation's outcome and, when it is a refusal, says why, in Wings' envelope."""
    await session.node.settled(op_id)
    op = session.node.operation_in_memory(op_id)
    if op is not None and op.status == REJECTED:
        session.answer(f"The {action} action was refused: {op.reason}.")


async def send_logs(session: Session, args: list[str]) -> None:
    if session.node.installing(session.uuid):
        return  # as Wings: nothing while it installs (no server runs; the install's lines come live)
    for line in session.node.console_tail(session.uuid, session.hub.settings.log_lines):
        session.deliver(frames.encode(frames.CONSOLE_OUTPUT, line))


async def send_stats(session: Session, args: list[str]) -> None:
    session.deliver(frames.encode_json(frames.STATS, session.node.utilization(session.uuid)))


async def send_command(session: Session, args: list[str]) -> None:
    _needs(session, perms.CONSOLE, "send console commands")
    command = "".join(args)
    problem = console_line_problem(command)
    if problem is not None:
        raise Answer(f"The command was not sent: {problem}.")
    if not session.node.running(session.uuid):
        raise Answer(NOT_RUNNING)
    # Durable before the console sees it: the Panel's activity log (engine.remote.activity) then
    # hears of every command that ran, and a command that cannot be recorded is not sent.
    await session.node.record_command(session.uuid, command, session.metadata())
    try:
        await session.node.send_command(session.uuid, command)
    except NotRunning:
        raise Answer(NOT_RUNNING) from None
    except RuntimeFailure as exc:
        raise RuntimeError(f"the server's console did not take the command: {exc}") from None


HANDLERS = {
    frames.SET_STATE: set_state,
    frames.SEND_LOGS: send_logs,
    frames.SEND_STATS: send_stats,
    frames.SEND_COMMAND: send_command,
}
