"""The benchmark history: benchmarks/results.jsonl, one JSON object a line, one line per full run.

The suite appends a row at the end of every full run (all groups, full sizes; other runs only with
`--record`), then redraws the plot (`benchmarks/plot.py`). The schema is in benchmarks/README.md
("History"); `SCHEMA` is its version, written in every row.

A row is written with one `write` on a file opened with O_APPEND, so two runs that end together
cannot interleave their lines, and a row that follows a torn line (a run killed mid-write) starts
on a line of its own. Reading reports each line that is not a row by its number, and goes on.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.suite.figures import Figure

SCHEMA = 1
ROOT = Path(__file__).resolve().parents[2]
HISTORY = ROOT / "benchmarks" / "results.jsonl"
PLOT = ROOT / "docs" / "benchmarks-history.png"

# The machine facts copied from `report.machine()` into a row, each under the same key.
MACHINE_KEYS = (
    "cpu",
    "cores",
    "memory_mib",
    "kernel",
    "load_average",
    "python",
    "sqlite",
    "postgresql",
    "docker",
    "wrk",
    "packages",
)
# Every row has these keys (null when unknown), in this order; every figure in it has FIGURE_KEYS.
ROW_KEYS = (
    "schema",
    "time",
    "source",
    "label",
    "commit",
    "dirty",
    "recorded_in",
    "smoke",
    "groups",
    "duration_s",
    *MACHINE_KEYS,
    "note",
    "figures",
)
FIGURE_KEYS = (
    "group",
    "name",
    "value",
    "unit",
    "baseline",
    "ratio",
    "target",
    "target_ratio",
    "target_value",
    "lower_is_better",
    "met",
    "error",
    "note",
)


def _number(x: Any) -> float | int | None:
    """JSON has no NaN or infinity; six significant digits are more than any figure here carries."""
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, int):
        return x
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def figure_row(
    group: str,
    name: str,
    value: float | None,
    unit: str,
    baseline: float | None = None,
    ratio: float | None = None,
    target_ratio: float | None = None,
    target_value: float | None = None,
    lower_is_better: bool = False,
    error: str | None = None,
    note: str | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    """One figure of a row. `target` and `met` follow `Figure`'s rules; `met` may be given where
    the value is not known (a backfilled row whose text says only "met")."""
    f = Figure(
        name,
        value,
        baseline,
        unit,
        target_ratio=target_ratio,
        target_value=target_value,
        lower_is_better=lower_is_better,
        error=error,
    )
    if ratio is None:
        ratio = f.ratio
    if met is None and (value is not None or ratio is not None or error is not None):
        bound = target_ratio if target_ratio is not None else target_value
        measured = ratio if target_ratio is not None else value
        if error is not None:
            met = False
        elif bound is not None and measured is not None:
            met = measured <= bound if lower_is_better else measured >= bound
    return {
        "group": group,
        "name": name.strip(),
        "value": _number(value),
        "unit": unit,
        "baseline": _number(baseline),
        "ratio": _number(ratio),
        "target": f.target,
        "target_ratio": _number(target_ratio),
        "target_value": _number(target_value),
        "lower_is_better": lower_is_better,
        "met": met,
        "error": error,
        "note": note,
    }


def from_figure(group: str, f: Figure) -> dict[str, Any]:
    return figure_row(
        group,
        f.name,
        f.ours,
        f.unit,
        f.baseline,
        f.ratio,
        f.target_ratio,
        f.target_value,
        f.lower_is_better,
        f.error,
        f.baseline_label or None,
    )


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def commit_and_dirty() -> tuple[str | None, bool | None]:
    """HEAD's short hash, and whether tracked files differ from it (the history file and its plot,
    which every run changes, left out)."""
    head = _git("rev-parse", "--short", "HEAD")
    status = _git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude)benchmarks/results.jsonl",
        ":(exclude)docs/benchmarks-history.png",
    )
    return (head.strip() if head else None), (None if status is None else bool(status.strip()))


def suite_row(
    started: str,
    groups: dict[str, list[Figure]],
    machine: dict,
    durations: dict[str, float],
    smoke: bool,
    note: str | None = None,
) -> dict[str, Any]:
    """The row for a run of the suite: `groups` maps each group run to its figures, in order."""
    commit, dirty = commit_and_dirty()
    row = {key: None for key in ROW_KEYS}
    row.update({key: machine.get(key) for key in MACHINE_KEYS})
    if isinstance(row["load_average"], (list, tuple)):
        row["load_average"] = [_number(x) for x in row["load_average"]]
    row.update(
        schema=SCHEMA,
        time=started,
        source="suite",
        commit=commit or machine.get("commit"),
        dirty=dirty,
        smoke=smoke,
        groups=list(groups),
        duration_s=_number(sum(durations.values())),
        note=note,
        figures=[from_figure(group, f) for group, figures in groups.items() for f in figures],
    )
    return row


def encode(row: dict[str, Any]) -> str:
    """One line: the row's keys in schema order, then any others; no NaN, no newline inside."""
    ordered = {key: row.get(key) for key in ROW_KEYS}
    ordered.update({k: v for k, v in row.items() if k not in ordered})
    return json.dumps(ordered, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"


def append(path: Path, row: dict[str, Any]) -> None:
    """Append one row with a single write on an O_APPEND descriptor."""
    data = encode(row).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as tail:
                tail.seek(size - 1)
                if tail.read(1) != b"\n":
                    data = b"\n" + data  # the line before was torn: ours starts a line of its own
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"{path}: wrote {written} of {len(data)} bytes")
    finally:
        os.close(fd)


@dataclass
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def read(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Every well-formed row, and a problem for each line that is not one (blank lines are skipped)."""
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(number, f"not JSON ({exc.msg} at column {exc.colno})"))
                continue
            reason = check(row)
            if reason:
                problems.append(Problem(number, reason))
            else:
                rows.append(row)
    return rows, problems


def check(row: Any) -> str | None:
    """Why `row` is not a row of this schema, or None."""
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    if row.get("schema") != SCHEMA:
        return f"schema {row.get('schema')!r}, expected {SCHEMA}"
    missing = [key for key in ROW_KEYS if key not in row]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(row["figures"], list):
        return "figures is not a list"
    for i, f in enumerate(row["figures"]):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            return f"figure {i + 1} has no name"
        for key in ("value", "baseline", "ratio", "target_ratio", "target_value"):
            if f.get(key) is not None and (isinstance(f[key], bool) or not isinstance(f[key], (int, float))):
                return f"figure {f['name']!r}: {key} is not a number"
    return None


def full_run(groups: Iterable[str], all_groups: Iterable[str], smoke: bool) -> bool:
    return not smoke and set(groups) == set(all_groups)


def record(path: Path, plot: Path, row: dict[str, Any]) -> None:
    """Append `row`, then redraw the plot; a plot that cannot be drawn costs the run nothing."""
    append(path, row)
    print(f"history: one row appended to {path}")
    try:
        from benchmarks.plot import plot as draw

        drawn, problems = draw(path, plot)
    except Exception as exc:  # noqa: BLE001 - no matplotlib, say: the row is kept, the plot is not redrawn
        print(f"history: the plot was not redrawn ({type(exc).__name__}: {exc})", file=sys.stderr)
        return
    for problem in problems:
        print(f"{path}:{problem.line}: {problem.reason}", file=sys.stderr)
    print(f"history plot: {plot} ({drawn} figures)" if drawn else "history plot: no figure to draw yet")
