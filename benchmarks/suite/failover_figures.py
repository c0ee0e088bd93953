"""A primary that dies: the seconds without service while a daemon on a multi-host URL
(`target_session_attrs=read-write`) takes power requests at 200 a second, its primary is
SIGKILLed and its synchronous standby promoted with `pg_ctl promote` (what Patroni does), against
the seconds `pg_ctl promote` itself took (PostgreSQL's share of the gap), in the same run.

The gap is the longest time, from a second before the kill on, in which no request was answered
202 (tests.support.failover.gap); tests/store/test_failover.py checks the same failover for lost
requests, which this does not repeat."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.suite.figures import Figure
from tests.support.daemon import DaemonProcess, definition
from tests.support.failover import Sent, drive, gap
from tests.support.postgres import ReplicatedPair, _bindir


def failover_figures(smoke: bool) -> list[Figure]:
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed (bash .ci/system.sh)")
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-failover-"))
    shutil.chown(folder, "postgres", "postgres")
    pair = ReplicatedPair(bindir, folder)
    daemon: DaemonProcess | None = None
    promotion: list[float] = []
    log: list[Sent] = []
    try:
        pair.start()
        pair.create_database("wingman")
        servers = [definition() for _ in range(10)]
        url = pair.url("wingman") + "&timeout=5&command_timeout=30"
        daemon = DaemonProcess(folder / "daemon", servers=servers, extra_config={"database": {"url": url}}).start(120)

        def failover() -> None:
            pair.kill_primary()
            started = time.monotonic()
            pair.promote()
            promotion.append(time.monotonic() - started)

        ids = [s["settings"]["uuid"] for s in servers]
        killed_at, _ = asyncio.run(drive(daemon.url, ids, failover, log))
    finally:
        if daemon is not None:
            daemon.stop()
        pair.stop()
        shutil.rmtree(folder, ignore_errors=True)
    statuses: dict[int, int] = {}
    for s in log:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    figure = Figure(
        "seconds without service through a failover (primary SIGKILLed, standby promoted)",
        gap(log, killed_at),
        promotion[0] if promotion else None,
        "s",
        baseline_label="pg_ctl promote -w, until it returned (it polls: the standby takes writes a little before)",
        lower_is_better=True,
        raw={"answers": statuses, "requests": len(log)},
    )
    if any(code >= 500 and code != 503 for code in statuses) or statuses.get(0):
        figure.error = f"answers other than 202 and 503 during the failover: {statuses}"
    return [figure]
