"""How a power action ends when it does not succeed, and exits said in words."""

from __future__ import annotations

from wingman.engine.environments.base import ExitInfo
from wingman.engine.servers.operations import Operation

SUSPENDED_MESSAGE = "Cannot start or restart a server that is suspended."
INSTALLING_MESSAGE = "server is currently installing"  # Wings' words (server/errors.go ErrServerIsInstalling)


class Rejected(Exception):
    """The action cannot run in the server's current situation; recorded as `power.rejected`."""


class Failed(Exception):
    """The action ran and did not reach its goal; recorded as `power.failed`."""


class SuspendedServer(Exception):
    """A start or restart of a suspended server: refused (and recorded) at the door."""

    def __init__(self, operation: Operation):
        super().__init__(SUSPENDED_MESSAGE)
        self.operation = operation


def describe_exit(info: ExitInfo) -> str:
    if info.oom_killed:
        return "killed for running out of memory"
    if info.signal:
        return f"killed by {info.signal}"
    if info.reason:
        return info.reason
    return f"exit code {info.exit_code}"


class ServerInstalling(Exception):
    """A power action asked for while the server installs (engine.install): refused at the door,
    and nothing is recorded. A kill too: killing the installer would leave a half-installed folder."""

    def __init__(self) -> None:
        super().__init__(INSTALLING_MESSAGE)
