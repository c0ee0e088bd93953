"""The suite's output: the table on the terminal, and the JSON file with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path

from benchmarks.suite.figures import Figure

PACKAGES = (
    "sanic",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "orjson",
    "uvloop",
    "pydantic",
    "transitions",
    "docker",
)


def _run(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "absent"


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        None,
    )
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "kernel": platform.release(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "wrk": _run("wrk", "--version") if shutil.which("wrk") else "absent",
        "postgresql": _run(str(pg[-1]), "--version") if pg else "absent",
        "docker": _run("docker", "version", "--format", "{{.Server.Version}}") if shutil.which("docker") else "absent",
        "commit": _run("git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse", "--short", "HEAD"),
    }


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def print_table(figures: list[Figure], smoke: bool) -> None:
    rows = [("figure", "ours", "baseline", "ratio", "target", "")]
    for f in figures:
        verdict = "ERROR" if f.error else {True: "met", False: "MISSED", None: ""}[f.met]
        rows.append(
            (
                f.name,
                _num(f.ours, f.unit),
                _num(f.baseline, f.unit if f.baseline is not None else ""),
                "-" if f.ratio is None else f"{f.ratio:.2f}",
                f.target,
                verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    if smoke:
        print("SMOKE RUN: small sizes; these figures say that each was produced, not how fast the daemon is.")
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=False))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    notes = [(f.name, f.baseline_label) for f in figures if f.baseline_label]
    errors = [(f.name, f.error) for f in figures if f.error]
    if notes:
        print("\nbaselines:")
        for name, label in notes:
            print(f"  {name.strip()}: {label}")
    if errors:
        print("\nnot measured:")
        for name, error in errors:
            print(f"  {name.strip()}: {error}")


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str))
