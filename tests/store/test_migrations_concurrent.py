"""Daemons of a fleet started at the same moment on a new PostgreSQL database: each migrates it
at start, and they take turns (the second finds the schema made), instead of one failing on
"type alembic_version already exists"."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.support.daemon import REPO, TOKEN

pytestmark = pytest.mark.postgres


def test_upgrades_at_the_same_moment_take_turns(tmp_path, pg_url):
    config = tmp_path / "wingman.yml"
    config.write_text(
        yaml.safe_dump(
            {"token": TOKEN, "system": {"root_directory": str(tmp_path / "var")}, "database": {"url": pg_url}}
        )
    )
    command = [sys.executable, "-m", "wingman.api.cli", "db", "upgrade", "--config", str(config)]
    upgrades = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]
    said = [p.communicate(timeout=120)[0] for p in upgrades]
    assert [p.returncode for p in upgrades] == [0, 0, 0, 0], said
    assert all("database at revision" in text for text in said), said
