"""Which process a pid is: a pid alone is not an identity, since the kernel reuses numbers. A
process is known by its pid, the time it started (in clock ticks since boot, from
/proc/<pid>/stat) and the boot it started in (/proc/sys/kernel/random/boot_id). The three are
recorded when a server's process starts, so a later daemon adopts that process, and only that
one, however long it was away."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from wingman.engine.environments.base import StartedData


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_ticks: int
    boot_id: str

    def as_dict(self) -> dict[str, int | str]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "boot_id": self.boot_id}


@lru_cache(maxsize=1)
def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot; None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 of the whole line: starttime


def identify(pid: int) -> ProcessIdentity | None:
    ticks = start_ticks(pid)
    return ProcessIdentity(pid, ticks, boot_id()) if ticks is not None else None


def still_running(recorded: StartedData) -> bool:
    """Whether the process recorded as {pid, start_ticks, boot_id} is the one alive now under that
    pid (not a later process that reused the number, not one from another boot)."""
    pid, ticks, boot = recorded.get("pid"), recorded.get("start_ticks"), recorded.get("boot_id")
    if not pid or ticks is None or not boot or boot != boot_id():
        return False
    return start_ticks(pid) == ticks and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")
