"""The install vocabulary: the events of an egg's install script run for a server (engine.install),
and their causes.

An install is an operation of its own, not a power operation (it has no `power.requested`): it
begins with `install.started`, committed with the `install` state change (offline -> installing),
and ends with exactly one outcome (`install.succeeded`, `install.failed`, `install.interrupted`),
committed with the `installed` state change back to offline. `install.adopted` says what boot
recovery decided for an install the daemon was running when it stopped. The Panel is then told
(`panel.install_reported`, engine.events).

engine.events imports this module at its end, so `event_class` knows these types wherever events
are read back.
"""

from __future__ import annotations

from pydantic import Field

from wingman.engine.event_types import EventType
from wingman.engine.events import Event, event

LAST_LINES = 20  # lines of the script's output kept in an outcome
LINE_CHARS = 500  # characters of one of those lines


@event(EventType.INSTALL_STARTED)
class InstallStarted(Event):
    """An install began: the server is `installing` from this commit on, its power lock held."""

    install_id: str
    reinstall: bool = False
    start_on_completion: bool = False
    runtime: str  # docker: the egg's script runs; process: nothing can run it (see install.succeeded)


@event(EventType.INSTALL_ADOPTED)
class InstallAdopted(Event):
    """Boot recovery found the installer container of an install that had no outcome: the install
    goes on from it (its exit, its output as Docker kept them), and ends as any install does."""

    install_id: str
    container_id: str
    running: bool  # still running when found (false: it had exited while the daemon was away)


class _Outcome(Event):
    install_id: str
    image: str | None = None  # the egg's install image and entrypoint, when the script was fetched
    entrypoint: str | None = None
    exit_code: int | None = None
    last_lines: list[str] = Field(default_factory=list, max_length=LAST_LINES)  # of its output, each cut
    log_file: str | None = None  # the install log, in the server's folder (None: not written)


@event(EventType.INSTALL_SUCCEEDED)
class InstallSucceeded(_Outcome):
    """The script exited 0 (or, for a `process` server, no script could run: `script_ran` false and
    `detail` says why), and the server's folder belongs to its user."""

    script_ran: bool = True
    detail: str | None = None


@event(EventType.INSTALL_FAILED)
class InstallFailed(_Outcome):
    """The install did not succeed: the script exited non-zero or was killed, the Panel's script or
    definition could not be had, the image or the container could not be, or it was cancelled (the
    server deleted)."""

    reason: str
    oom_killed: bool = False


@event(EventType.INSTALL_INTERRUPTED)
class InstallInterrupted(_Outcome):
    """Boot recovery found an install without an outcome and nothing left of it to finish (its
    installer container gone, or a `process` server's install cut short): it failed."""

    reason: str


OUTCOME_TYPES = frozenset({InstallSucceeded.type, InstallFailed.type, InstallInterrupted.type})
