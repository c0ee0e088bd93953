"""Boot of a big node, `wingman serve` in its own process, timed from the process start to the
API's first answer (`GET /api/system`; boot recovery goes on in the background after that):

- registration: 10,000 servers in the config file on an empty database (they must be recorded
  in groups, not one commit each: every group shares its commit time, which counts them);
- a log of 1,000,000 events over those servers (synthetic, legal, bulk-inserted): the first boot
  on it (no checkpoint, no snapshots yet) and the second (what every later boot is), with the
  daemon's resident memory at rest after the second.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.suite.figures import Figure
from tests.support.daemon import REPO, TOKEN, free_port
from tests.support.synthetic_log import build_log
from wingman.engine.store.database import create_engine, upgrade

NO_RESTART = {"policy": "no"}  # the synthetic servers' commands do not exist: no crash loops


def _serve(folder: Path, servers: list[dict], **extra) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = {
        "token": TOKEN,
        "api": {"host": "127.0.0.1", "port": port},
        "system": {"root_directory": str(folder / "var"), "run_directory": str(folder / "run")},
        "servers": servers,
        **extra,
    }
    # In JSON (YAML too), which the daemon reads with a JSON parser: see engine.config.read_document.
    (folder / "wingman.yml").write_text(json.dumps(cfg, indent=1))
    log = open(folder / "daemon.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wingman.api.cli", "serve", "--config", str(folder / "wingman.yml")],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def boot(folder: Path, servers: list[dict], timeout: float = 900) -> dict:
    """Start the daemon, time it to the API's first answer, wait for boot recovery, read its RSS
    at rest, stop it cleanly."""
    t0 = time.perf_counter()
    proc, url = _serve(folder, servers)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ready = None
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=5) as c:
            while time.perf_counter() - t0 < timeout:
                if proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {proc.returncode}; see {folder / 'daemon.log'}")
                try:
                    body = c.get("/api/system").json()
                    if ready is None:
                        ready = time.perf_counter() - t0
                    if body["wingman"]["boot_recovery"]["done"]:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            recovered = time.perf_counter() - t0
            time.sleep(2)  # at rest: boot work done, nothing asked of it
            rss = _rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(120)
    if ready is None:
        raise RuntimeError("the daemon never answered")
    return {"ready_s": ready, "recovered_s": recovered, "rss_mib": rss, **_boot_log(folder / "daemon.log")}


def panel_boot(folder: Path, panel, timeout: float = 900) -> dict:
    """`boot` of a node whose servers the Panel lists: timed to the API's first answer and to the
    inventory's reconciliation (`panel.inventory_reconciled`), RSS at rest after that."""
    done_before = _reconciled(folder)
    t0 = time.perf_counter()
    proc, url = _serve(folder, [], remote=panel.url, token_id="bench")
    ready = reconciled = None
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5) as c:
            while time.perf_counter() - t0 < timeout and reconciled is None:
                if proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {proc.returncode}; see {folder / 'daemon.log'}")
                try:
                    c.get("/api/system").raise_for_status()
                    ready = ready or time.perf_counter() - t0
                    if _reconciled(folder) > done_before:
                        reconciled = time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            time.sleep(2)  # at rest
            rss = _rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(120)
    if ready is None or reconciled is None:
        raise RuntimeError("the daemon never answered, or never reconciled with the Panel")
    return {"ready_s": ready, "reconciled_s": reconciled, "rss_mib": rss, **_boot_log(folder / "daemon.log")}


def _reconciled(folder: Path) -> int:
    """How many reconciliations the daemon's log file records (read beside it, not through the API:
    the count must not cost the daemon a request)."""
    path = folder / "daemon.log"
    return path.read_text(errors="replace").count("servers reconciled with the Panel") if path.exists() else 0


def _boot_log(path: Path) -> dict:
    """The daemon's own account of its last boot: seconds per step, servers from snapshots."""
    found: dict = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"daemon ready' in line:
            doc = json.loads(line)
            found = {"boot_seconds": doc.get("boot_seconds"), "from_snapshots": doc.get("from_snapshots")}
    return found


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _definitions_in_log(db: Path) -> list[dict]:
    """Each server's latest definition as the log holds it, with restarts off."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT e.data FROM events e JOIN (SELECT stream_id, max(version) AS v FROM events"
        " WHERE type IN ('server.registered', 'server.configuration_changed') GROUP BY stream_id) last"
        " ON e.stream_id = last.stream_id AND e.version = last.v"
    ).fetchall()
    conn.close()
    docs = [json.loads(r[0])["definition"] for r in rows]
    for d in docs:
        d["settings"]["restart_policy"] = NO_RESTART
    return docs


async def _build(db: Path, events: int, servers: int) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    await build_log(engine, events, servers=servers, seed=7)
    await engine.dispose()


def _groups(db: Path) -> tuple[int, int]:
    """(servers registered, distinct commit times among their registrations)."""
    conn = sqlite3.connect(db)
    n, groups = conn.execute(
        "SELECT count(*), count(DISTINCT recorded_at) FROM events WHERE type = 'server.registered'"
    ).fetchone()
    conn.close()
    return n, groups


def boot_figures(smoke: bool) -> list[Figure]:
    servers, events = (200, 20_000) if smoke else (10_000, 1_000_000)
    root = Path(tempfile.mkdtemp(prefix="wingman-bench-boot-"))
    try:
        # Registration on an empty database.
        reg = root / "register"
        reg.mkdir()
        from tests.support.synthetic_log import definition, server_ids

        docs = [definition(u) for u in server_ids(servers, seed=3)]
        for d in docs:
            d["settings"]["restart_policy"] = NO_RESTART
        first = boot(reg, docs)
        registered, groups = _groups(reg / "var" / "wingman.db")

        # The big log: first boot, then the second.
        big = root / "log"
        (big / "var").mkdir(parents=True)
        t0 = time.perf_counter()
        asyncio.run(_build(big / "var" / "wingman.db", events, servers))
        built = time.perf_counter() - t0
        docs = _definitions_in_log(big / "var" / "wingman.db")
        log_first = boot(big, docs)
        (big / "daemon.log").rename(big / "daemon-first.log")
        log_second = boot(big, docs)

        # The same number of servers listed by a Panel (tests/support/panel.py, in this process).
        from tests.support.panel import PanelStandIn

        listed = [definition(u) for u in server_ids(servers, seed=5)]
        for d in listed:
            d["settings"]["restart_policy"] = NO_RESTART
        node = root / "panel"
        node.mkdir()
        with PanelStandIn(listed) as panel:
            panel_first = panel_boot(node, panel)
            panel_second = panel_boot(node, panel)
            pages = len(panel.requests_to("/api/remote/servers", "GET"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Figure(
            f"first boot, {servers:,} servers registered from the config file",
            first["ready_s"],
            None,
            "s",
            baseline_label=f"{registered:,} registered in {groups} commits",
            raw={**first, "registered": registered, "commits": groups},
            error=None if groups < max(2, registered // 20) else f"{groups} commits for {registered} servers",
        ),
        Figure(
            f"first boot on {events:,} events over {servers:,} servers (start -> API ready)",
            log_first["ready_s"],
            None,
            "s",
            raw={**log_first, "log_built_s": built},
        ),
        Figure(
            "second boot on that log (start -> API ready)",
            log_second["ready_s"],
            None,
            "s",
            baseline_label=f"boot recovery done at {log_second['recovered_s']:.1f} s",
            target_value=5,
            lower_is_better=True,
            raw=log_second,
        ),
        Figure(
            "  daemon RSS at rest after the second boot",
            log_second["rss_mib"],
            None,
            "MiB",
            target_value=150 / 1.048576,
            lower_is_better=True,
            baseline_label="target 150 MB",
        ),
        Figure(
            f"first boot, {servers:,} servers listed by a Panel (start -> reconciled)",
            panel_first["reconciled_s"],
            None,
            "s",
            baseline_label=f"API ready at {panel_first['ready_s']:.1f} s; {pages} pages in two boots",
            raw={**panel_first, "pages_both_boots": pages},
        ),
        Figure(
            "second boot, the same Panel (start -> API ready)",
            panel_second["ready_s"],
            None,
            "s",
            baseline_label=f"reconciled at {panel_second['reconciled_s']:.1f} s",
            target_value=5,
            lower_is_better=True,
            raw=panel_second,
        ),
        Figure(
            "  daemon RSS at rest after it reconciled",
            panel_second["rss_mib"],
            None,
            "MiB",
            target_value=150 / 1.048576,
            lower_is_better=True,
            baseline_label="target 150 MB",
        ),
    ]
