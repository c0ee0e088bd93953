"""The checks that keep the house as it is (issue 27), run with the tests so CI runs them: the
house style (`ruff format`, `ruff check`), the import rules as contracts (`lint-imports`, from
pyproject's [tool.importlinter]), mypy --strict on the engine, and no import by the bare folder
names that exist only in a checkout."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mypy_run import mypy

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CODE = ["engine", "api", "migrations", "tests", "benchmarks", "setup.py"]
# Held to --strict: the whole engine, and the API's modules typed so far (the way in of a power
# request is tests/system/test_typing.py's). A module that joins stays.
STRICT = ["-p", "wingman.engine", "-m", "wingman.api.cli.progress"]


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_code_is_formatted() -> None:
    done = tool("ruff", "format", "--check", *CODE)
    assert done.returncode == 0, "run `ruff format`:\n" + done.stdout + done.stderr


def test_the_code_passes_the_lint_rules() -> None:
    done = tool("ruff", "check", *CODE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_import_contracts_are_kept() -> None:
    done = tool("lint-imports", "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.timeout(600)
def test_the_engine_is_typed_strictly() -> None:
    done = mypy("--strict", *STRICT)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr


def test_nothing_imports_the_folders_by_their_bare_names() -> None:
    """`engine`, `api` and `migrations` exist as top-level names only in a checkout: an import by
    them works in the tests and fails once installed (the package is `wingman`)."""
    bare = []
    for folder in ("engine", "api", "migrations", "tests", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                bare += [
                    f"{path.relative_to(REPO)}:{node.lineno} {name}"
                    for name in names
                    if name.split(".")[0] in ("engine", "api", "migrations")
                ]
    assert bare == []
