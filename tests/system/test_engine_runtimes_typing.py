"""The runtimes and what drives them pass `mypy --strict` (issue 27): the environments (local
processes, Docker, whose SDK has no stubs and is typed at one seam, engine/environments/docker/
sdk.py), installs, pre-boot and the Panel's side (engine.remote), so a change that loses their
types fails here."""

from __future__ import annotations

from tests.support.mypy_run import mypy

PACKAGES = ["environments", "install", "preboot", "remote"]


def test_the_runtimes_and_their_drivers_are_strictly_typed() -> None:
    done = mypy("--strict", *(a for p in PACKAGES for a in ("-p", f"wingman.engine.{p}")))
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr
