"""The engine's core passes `mypy --strict` (issue 27): the servers (definition, fold, replay,
snapshots, registry), the live feeds and utilization, the console, the demo server, and the
top-level modules (the statechart, the event vocabulary, the config's sections), so a change that
loses their types fails here.

engine/config.py joins when engine/config_metrics.py gives its Field default by keyword (mypy
takes a positional one for a required field, so `Field(default_factory=MetricsConfig)` fails)."""

from __future__ import annotations

from tests.support.mypy_run import mypy

PACKAGES = ["servers", "live", "console", "demo"]
MODULES = [
    "config_docker",
    "config_keys",
    "config_servers",
    "event_types",
    "events",
    "heap",
    "install_events",
    "panel_events",
    "private_files",
    "signals",
    "statechart",
]


def test_the_engine_core_is_strictly_typed() -> None:
    args = [a for p in PACKAGES for a in ("-p", f"wingman.engine.{p}")]
    args += [a for m in MODULES for a in ("-m", f"wingman.engine.{m}")]
    done = mypy("--strict", *args)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr
