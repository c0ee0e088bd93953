"""The documentation: the MkDocs site under docs/ builds with --strict (a page left out of the nav,
or a link to a page or an anchor that is not there, fails it: see mkdocs.yml's `validation`), and
the README stays a first screen that starts with the two commands and points into docs/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_LINES = 150
# The README's first lines, exactly: the two commands a newcomer runs first.
README_START = """\
# wingman

```sh
bash .ci/serve.sh     # set up, then run the daemon on embedded defaults (SQLite, local processes, a demo server)
bash .ci/test.sh      # set up everything (system packages, Docker engine, test image, venv) and run every test
```
"""


def test_the_site_builds_strict(tmp_path: Path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner: noise in a failure
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if done.returncode != 0:
        pytest.fail(
            f"mkdocs build --strict failed (exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False
        )
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()


def test_the_readme_is_a_first_screen():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; at most {README_MAX_LINES}: the manual goes in docs/"
    )
    assert text.startswith(README_START), "README.md must start with the two commands:\n" + README_START


def test_the_readme_links_resolve():
    """Relative links from the README (GitHub renders them) name files that exist."""
    text = README.read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]
    assert any(t.startswith("docs/") for t in targets), "README.md points to no page of docs/"
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
