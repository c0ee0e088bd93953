"""The benchmark history as a picture: each figure with a target, run after run, against it.

    .venv/bin/python -m benchmarks.plot                     # benchmarks/results.jsonl -> docs/benchmarks-history.png
    .venv/bin/python -m benchmarks.plot --history FILE --out PNG

A figure with a ratio target is drawn as its ratio (ours / baseline), one with a bound on its own
value in its unit; a ratio figure without a target is drawn when it has at least two runs. Points
that miss their target are red, the target a dashed line. Smoke runs are left out (their sizes
differ). The suite redraws the plot after it appends a row.

Exit status: 0, or 1 when a line of the history is not a row (each is reported by its number,
and the plot is drawn from the others), or 2 when there is nothing to draw.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks.suite.history import HISTORY, PLOT, Problem, read

COLUMNS = 4


def _tick(row: dict[str, Any]) -> str:
    if row.get("label"):
        return str(row["label"])
    day = (row.get("time") or "")[5:10]
    commit = row.get("commit") or "?"
    return f"{day} {commit}{'+' if row.get('dirty') else ''}"


def series(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per figure to draw, in the order the figures first appear: its name, what is drawn
    (ratio or value), the target and the points (run index, measured, met)."""
    found: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        for f in row["figures"]:
            s = found.setdefault(
                f["name"],
                {
                    "name": f["name"],
                    "unit": f.get("unit") or "",
                    "target_ratio": None,
                    "target_value": None,
                    "lower_is_better": False,
                    "runs": [],
                },
            )
            for key in ("target_ratio", "target_value"):
                if f.get(key) is not None:
                    s[key] = f[key]
            if f.get("target_ratio") is not None or f.get("target_value") is not None:
                s["lower_is_better"] = bool(f.get("lower_is_better"))
            s["runs"].append((index, f))
    drawn = []
    for s in found.values():
        if s["target_ratio"] is not None:
            kind, target = "ratio", s["target_ratio"]
        elif s["target_value"] is not None:
            kind, target = "value", s["target_value"]
        else:
            kind, target = "ratio", None
        points = []
        for index, f in s["runs"]:
            y = f.get(kind)
            if isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y):
                met = None if target is None else (y <= target if s["lower_is_better"] else y >= target)
                points.append((index, float(y), met))
        if not points or (target is None and len(points) < 2):
            continue
        drawn.append(
            {
                "name": s["name"],
                "kind": kind,
                "unit": s["unit"],
                "target": target,
                "lower_is_better": s["lower_is_better"],
                "points": points,
            }
        )
    return drawn


def draw(rows: list[dict[str, Any]], out: Path) -> int:
    """Write the PNG; returns how many figures it holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r.get("smoke")]
    panels = series(rows)
    if not panels:
        return 0
    lines = math.ceil(len(panels) / COLUMNS)
    fig, axes = plt.subplots(lines, COLUMNS, figsize=(4.6 * COLUMNS, 3.1 * lines + 0.8), squeeze=False)
    ticks = [_tick(r) for r in rows]
    for ax, p in zip(axes.flat, panels, strict=False):
        xs = [x for x, _, _ in p["points"]]
        ys = [y for _, y, _ in p["points"]]
        ax.plot(xs, ys, color="#4878a8", linewidth=1, zorder=1)
        colours = ["#c03030" if met is False else "#2a8a3a" if met else "#4878a8" for _, _, met in p["points"]]
        ax.scatter(xs, ys, c=colours, s=14, zorder=2)
        if p["target"] is not None:
            ax.axhline(p["target"], color="#c03030", linestyle="--", linewidth=1)
        what = "ours / baseline" if p["kind"] == "ratio" else p["unit"]
        sign = "<=" if p["lower_is_better"] else ">="
        target = "" if p["target"] is None else f", target {sign} {p['target']:g}"
        ax.set_title(_wrap(p["name"]), fontsize=8)
        ax.set_ylabel(f"{what}{target}", fontsize=7)
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(ticks, rotation=90, fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    times = [r["time"] for r in rows if r.get("time")] or ["?"]
    first, last = times[0], times[-1]
    fig.suptitle(
        f"wingman benchmark history: {len(rows)} runs, {first[:10]} to {last[:10]} "
        "(green: met, red: missed, dashed: the target)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return len(panels)


def _wrap(text: str, width: int = 52) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line])


def plot(history: Path = HISTORY, out: Path = PLOT) -> tuple[int, list[Problem]]:
    """Read the history, draw what it holds: (figures drawn, lines that were not rows)."""
    rows, problems = read(history)
    return draw(rows, out), problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", type=Path, default=HISTORY, help="the JSON lines file (default: %(default)s)")
    p.add_argument("--out", type=Path, default=PLOT, help="the PNG to write (default: %(default)s)")
    args = p.parse_args(argv)
    if not args.history.exists():
        print(f"{args.history}: no such file", file=sys.stderr)
        return 2
    drawn, problems = plot(args.history, args.out)
    for problem in problems:
        print(f"{args.history}:{problem.line}: {problem.reason}", file=sys.stderr)
    if not drawn:
        print(f"{args.history}: no figure to draw", file=sys.stderr)
        return 2
    print(f"{args.out}: {drawn} figures")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
