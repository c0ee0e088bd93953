"""One reading of a running server's processes, from /proc through psutil.

Blocking calls (each reads a few /proc files): the utilization monitor runs them in its own single
worker thread, never on the event loop.

Which processes are the server's: its main process (a local server's shell, or a container's main
process as the host sees it), every process in the main process's group when it leads one (a local
server runs in its own session and group, so children that were re-parented still count), and every
descendant of the main process (a container's processes descend from its main one). One rule for
both runtimes, with no runtime named here. Processes a user `docker exec`s into a container are
children of the container runtime's shim and are not counted.

Network counters are those of the main process's network namespace when it has one of its own (a
container); a local process shares the host's namespace, whose counters are not its own, so it
reports zeros rather than a number that means something else.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

Key = tuple[int, float]  # (pid, create time): a pid that is reused is a different process


@dataclass(frozen=True)
class Reading:
    pid: int
    taken_at: float  # time.monotonic() of the reading
    memory_bytes: int  # resident memory of all the server's processes
    cpu: dict[Key, float] = field(default_factory=dict)  # CPU seconds (user + system) per process
    rx_bytes: int = 0
    tx_bytes: int = 0
    started_at: float | None = None  # epoch seconds the main process started


def group_members(leaders: set[int]) -> dict[int, set[int]]:
    """The processes of each process group led by one of `leaders`, from one pass over /proc."""
    members: dict[int, set[int]] = {pid: set() for pid in leaders}
    if not leaders:
        return members
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            pgid = os.getpgid(int(name))
        except OSError:  # gone meanwhile, or not ours to see
            continue
        if pgid in members:
            members[pgid].add(int(name))
    return members


def read(pid: int, group: set[int], host_netns: str | None) -> Reading | None:
    """A reading of the server whose main process is `pid` (None when it is gone)."""
    try:
        main = psutil.Process(pid)
        started_at = main.create_time()
        pids = {pid} | group | {child.pid for child in main.children(recursive=True)}
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    memory, cpu = 0, {}
    for member in pids:
        try:
            proc = main if member == pid else psutil.Process(member)
            with proc.oneshot():
                times = proc.cpu_times()
                memory += proc.memory_info().rss
                cpu[(member, proc.create_time())] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    rx, tx = namespace_traffic(pid, host_netns)
    return Reading(
        pid=pid,
        taken_at=time.monotonic(),
        memory_bytes=memory,
        cpu=cpu,
        rx_bytes=rx,
        tx_bytes=tx,
        started_at=started_at,
    )


def network_namespace(pid: int | str = "self") -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def namespace_traffic(pid: int, host_netns: str | None) -> tuple[int, int]:
    """Bytes received and sent by the interfaces of the process's own network namespace (the
    loopback aside, as `docker stats` does); (0, 0) when it shares the host's."""
    own = network_namespace(pid)
    if own is None or own == host_netns:
        return 0, 0
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]  # two header lines
    except OSError:
        return 0, 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def cpu_percent(before: Reading | None, now: Reading) -> float:
    """CPU used between two readings, in percent of one core (Wings' `cpu_absolute`): the CPU
    seconds every process spent, over the wall time between the readings. A process that appeared
    in between counts with all its CPU time, which it spent since it started, within the interval."""
    if before is None or before.pid != now.pid:
        return 0.0
    elapsed = now.taken_at - before.taken_at
    if elapsed <= 0:
        return 0.0
    spent = sum(max(0.0, seconds - before.cpu.get(key, 0.0)) for key, seconds in now.cpu.items())
    return round(spent / elapsed * 100, 3)


def host_memory() -> int:
    """What a server without a memory limit may use: the machine's memory (Docker reports the
    same as the limit of an unlimited container)."""
    total: int = psutil.virtual_memory().total
    return total
