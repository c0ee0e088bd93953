"""The standalone benchmark scripts, run by the suite at its sizes, their printed figures read
back into the table: checkpoints on a big log (bench_checkpoints.py), websocket delivery
against a bare Sanic broadcast (bench_ws_delivery.py), a fleet of Docker servers
(bench_docker_fleet.py, needs a Docker engine)."""

from __future__ import annotations

import re
import subprocess
import sys

from benchmarks.suite.figures import Figure
from tests.support.daemon import REPO


def _script(name: str, *args: str, timeout: float = 1800) -> str:
    out = subprocess.run(
        [sys.executable, f"benchmarks/{name}", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} exited {out.returncode}: {out.stderr.strip()[-500:]}")
    return out.stdout


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"no figure matching {pattern!r} in:\n{text[-1500:]}")
    return float(m.group(1).replace(",", ""))


def _guarded(name: str, make) -> list[Figure]:
    try:
        return make()
    except Exception as exc:  # noqa: BLE001 - the table says which script failed and why
        return [Figure(name, None, None, "", error=f"{type(exc).__name__}: {str(exc)[:300]}")]


def script_figures(smoke: bool) -> list[Figure]:
    figures: list[Figure] = []

    def checkpoints():
        n = 20_000 if smoke else 1_000_000
        out = _script("bench_checkpoints.py", "--events", str(n))
        folded = _number(
            r"boot, no checkpoint yet: tree folded from every event in [\d.]+ s \(([\d,]+) events/s\)", out
        )
        resumed = _number(r"boot from the checkpoint: tree resumed in (\d+) ms", out)
        plain = _number(r"verify, per-stream checks only: +[\d.]+ s \(([\d,]+) events/s\)", out)
        both = _number(r"verify --key, both in one pass: +[\d.]+ s \(([\d,]+) events/s\)", out)
        return [
            Figure(
                f"checkpoint tree at boot, {n:,} events: resumed from the checkpoint",
                resumed,
                None,
                "ms",
                baseline_label=f"folded from every event: {folded:,.0f} events/s",
                raw={"output": out},
            ),
            Figure(
                f"verify --key on {n:,} events (hash chains and checkpoints in one pass)",
                both,
                plain,
                "events/s",
                baseline_label="per-stream checks alone",
            ),
        ]

    def websockets():
        sockets, cycles = ("100", "3") if smoke else ("1000", "20")
        out = _script("bench_ws_delivery.py", "--sockets", sockets, "--cycles", cycles)
        ours = _number(r"wingman: p50 +([\d.]+) ms", out)
        base = _number(r"baseline: p50 +([\d.]+) ms", out)
        return [
            Figure(
                f"status frame delivery to {sockets} websockets, p50 (commit -> frame)",
                ours,
                base,
                "ms",
                baseline_label="bare Sanic broadcast p50",
                lower_is_better=True,
                raw={"output": out},
            )
        ]

    def fleet():
        servers = "5" if smoke else "200"
        out = _script("bench_docker_fleet.py", "--servers", servers)
        started = _number(r"docker servers started through the API in ([\d.]+) s", out)
        ratio = _number(r"p50 ratio to baseline ([\d.]+)", out)
        return [
            Figure(f"{servers} Docker servers started through the API", started, None, "s", raw={"output": out}),
            Figure(
                f"  GET /api/servers/{{uuid}} p50 with {servers} containers running, ratio to idle",
                ratio,
                1.0,
                "x",
                baseline_label="the same GET with none running",
            ),
        ]

    for name, make in (
        ("checkpoints on a big log", checkpoints),
        ("websocket delivery", websockets),
        ("Docker fleet", fleet),
    ):
        figures.extend(_guarded(name, make))
    return figures
