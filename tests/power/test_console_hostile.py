"""What a server prints cannot hurt the daemon: a flood with no newline keeps its memory bounded
and it answers throughout; a backtracking done-line pattern against hostile output cannot stall
it. Against the real daemon (`wingman serve`) and real server processes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.daemon import SERVER_PYTHON, definition
from tests.support.http import logs, power
from tests.support.waiting import eventually
from wingman.engine.console.buffer import DEFAULT_BYTES
from wingman.engine.console.lines import MAX_LINE

FLOOD_MIB = 32
FLOOD = (
    f'{SERVER_PYTHON} -c "import sys, time; w = sys.stdout.buffer; '
    f"[w.write(b'x' * 65536) for _ in range({FLOOD_MIB * 16})]; "
    "w.write(b'\\nflood done\\n'); w.flush(); time.sleep(1000)\""
)
HOSTILE = (
    f"{SERVER_PYTHON} -c \"import sys, time; print('a' * 40 + '!', flush=True); "
    "sys.stdin.readline(); print('aaaa', flush=True); time.sleep(1000)\""
)
KILLABLE = {"type": "signal", "value": "SIGKILL"}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_flood_without_newlines_keeps_the_daemon_small_and_answering(daemon_process):
    server = definition(invocation=FLOOD, done=(), stop=KILLABLE)
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    baseline = rss_bytes(d.proc.pid)
    assert d.wait_operation(power(d, uuid, "start")["id"])["status"] == "succeeded"
    peak, answers = baseline, 0
    with httpx.Client(base_url=d.url, headers=d.headers, timeout=15) as c:

        def flood_done() -> bool:
            """Asked every 0.2 s while the flood goes on: the daemon answers, its RSS is sampled."""
            nonlocal peak, answers
            assert c.get("/api/system").status_code == 200  # a ReadTimeout here means the daemon stalled
            answers += 1
            peak = max(peak, rss_bytes(d.proc.pid))
            return "flood done" in c.get(f"/api/servers/{uuid}/logs", params={"size": 1000}).json()["data"]

        eventually(flood_done, 180, "the flood to finish", interval=0.2)
    lines = logs(d, uuid)
    assert sum(len(line) for line in lines) <= DEFAULT_BYTES + MAX_LINE + 100
    cut = [line for line in lines if "line cut" in line]
    assert cut and all(len(line) < MAX_LINE + 100 for line in cut)
    assert lines[-1] == "flood done"
    # 32 MiB went through; the old line-bounded buffer kept all of it.
    assert peak - baseline < 48 * 1024 * 1024, f"RSS grew by {(peak - baseline) / 1048576:.1f} MiB"
    print(
        f"flood: {FLOOD_MIB} MiB, RSS {baseline / 1048576:.0f} -> peak {peak / 1048576:.0f} MiB, "
        f"{answers} answers during it"
    )


def test_a_backtracking_done_pattern_cannot_stall_the_daemon(daemon_process):
    """`(a+)+$` against 'a' * 40 + '!' takes a backtracking engine about 2^40 steps."""
    server = definition(invocation=HOSTILE, done=["regex:(a+)+$"], stop=KILLABLE)
    uuid = server["settings"]["uuid"]
    d = daemon_process(servers=[server])
    start = power(d, uuid, "start")
    with httpx.Client(base_url=d.url, headers=d.headers, timeout=15) as c:
        eventually(
            lambda: "a" * 40 + "!" in c.get(f"/api/servers/{uuid}/logs").json()["data"],
            what="the hostile line in the console",
        )
        worst = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            assert c.get("/api/system").status_code == 200
            worst = max(worst, time.monotonic() - t0)
        assert c.get(f"/api/servers/{uuid}").json()["state"] == "starting"  # that line is no done-line
        assert c.post(f"/api/servers/{uuid}/commands", json={"commands": ["go"]}).status_code == 204
    assert d.wait_operation(start["id"])["status"] == "succeeded"  # 'aaaa' is one: the matcher works
    print(f"backtracking pattern: worst GET /api/system {worst * 1000:.1f} ms")
