"""mypy over the code as it installs: the folders at the top of the repository are imported as
wingman.engine, wingman.api and wingman.migrations (setup.py), which an editable install provides
with an import hook that mypy cannot follow. So mypy reads them through a tree of links that has
that shape, made for the run: `wingman/engine -> <repo>/engine`, and so on."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "api", "migrations")


def mypy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run mypy with `args` (modules as `-m wingman.engine.node`, packages as `-p wingman.engine`)."""
    with tempfile.TemporaryDirectory(prefix="wingman-mypy-") as tree:
        (Path(tree) / "wingman").mkdir()
        for name in PACKAGES:
            (Path(tree) / "wingman" / name).symlink_to(REPO / name, target_is_directory=True)
        env = {**os.environ, "MYPYPATH": tree}
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--cache-dir", str(Path(tree) / ".cache"), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
