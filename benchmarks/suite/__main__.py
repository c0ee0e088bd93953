"""The benchmark suite: every figure against its baseline measured in the same run, one table,
and a JSON file with the machine, the versions and every raw figure. A full run (every group, full
sizes; any run with --record) also appends one row to the history, benchmarks/results.jsonl, and
redraws its plot, docs/benchmarks-history.png (benchmarks/plot.py).

    bash benchmarks/run                  # the full suite (about half an hour on 2 cores)
    bash benchmarks/run --smoke          # every figure at a small size (CI: produced, not judged)
    bash benchmarks/run --only store,http --json out.json

Exit status: 0 when every figure was produced (whether or not it meets its target: speed is
reported, never asserted), 1 when one could not be measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from benchmarks.suite import history
from benchmarks.suite.figures import Figure
from benchmarks.suite.report import machine, print_table, write_json

# Group name -> module and function; imported lazily, so one group's missing tool (no Docker
# engine, no PostgreSQL) costs only its own figures.
GROUPS = {
    "store": ("benchmarks.suite.store_figures", "sqlite_figures"),
    "postgres": ("benchmarks.suite.postgres_figures", "postgres_figures"),
    "checkpoints": ("benchmarks.suite.store_figures", "checkpoint_cost_figures"),
    "http": ("benchmarks.suite.http_figures", "http_figures"),
    "replay": ("benchmarks.suite.replay_figures", "replay_figures"),
    "boot": ("benchmarks.suite.boot_figures", "boot_figures"),
    "latency": ("benchmarks.suite.latency_figures", "latency_figures"),
    "pull": ("benchmarks.suite.pull_figures", "pull_figures"),  # beside the Docker start, which pulls nothing
    "scripts": ("benchmarks.suite.script_figures", "script_figures"),
    "sockets": ("benchmarks.suite.socket_figures", "socket_figures"),
    "migrate": ("benchmarks.suite.migrate_figures", "migrate_figures"),
    "metrics": ("benchmarks.suite.metrics_figures", "metrics_figures"),  # kills/s while /metrics is scraped
    "probes": ("benchmarks.suite.probe_figures", "probe_figures"),  # kills/s while 1,000 servers are probed
    "replication": ("benchmarks.suite.replication_figures", "replication_figures"),  # a synchronous standby
    "failover": ("benchmarks.suite.failover_figures", "failover_figures"),  # a primary that dies under load
    "fleet": ("benchmarks.suite.fleet_figures", "fleet_figures"),  # 2 and 4 nodes writing one PostgreSQL database
}


def run_group(name: str, smoke: bool) -> tuple[list[Figure], float]:
    module, function = GROUPS[name]
    t0 = time.perf_counter()
    try:
        mod = __import__(module, fromlist=[function])
        figures = getattr(mod, function)(smoke)
    except Exception as exc:  # noqa: BLE001 - the table says which group failed and why
        traceback.print_exc()
        figures = [Figure(f"{name}: not measured", None, None, "", error=f"{type(exc).__name__}: {exc}")]
    return figures, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="small sizes: checks every figure is produced")
    p.add_argument("--only", default="", help=f"comma-separated groups: {', '.join(GROUPS)}")
    p.add_argument("--json", type=Path, default=None, help="where to write the JSON (default: benchmarks/results/)")
    p.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append a row to the history file and redraw its plot (default: for a full run only)",
    )
    p.add_argument("--history", type=Path, default=history.HISTORY, help="the history file (default: %(default)s)")
    p.add_argument("--plot", type=Path, default=history.PLOT, help="the history's plot (default: %(default)s)")
    args = p.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        p.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: dict[str, list[Figure]] = {}
    durations: dict[str, float] = {}
    for name in groups:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        results[name], durations[name] = run_group(name, args.smoke)
        print(f"== {name}: {durations[name]:.0f} s", file=sys.stderr, flush=True)
    figures = [f for name in groups for f in results[name]]
    print_table(figures, smoke=args.smoke)
    path = args.json or Path(__file__).resolve().parents[1] / "results" / (
        f"{'smoke' if args.smoke else 'full'}-{started.replace(':', '')}.json"
    )
    facts = machine()
    write_json(
        path,
        {
            "started": started,
            "smoke": args.smoke,
            "machine": facts,
            "durations_s": durations,
            "groups": {name: [f.as_dict() for f in results[name]] for name in groups},
        },
    )
    print(f"\nraw figures, machine and versions: {path}")
    record = history.full_run(groups, GROUPS, args.smoke) if args.record is None else args.record
    if record:  # the history: one row per full run (benchmarks/README.md, "History")
        history.record(
            args.history,
            args.plot,
            history.suite_row(started, {name: results[name] for name in groups}, facts, durations, args.smoke),
        )
    failed = [f.name for f in figures if f.error is not None and not f.error.startswith("not measured: skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
