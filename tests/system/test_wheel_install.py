"""A package that installs (issue 27): `pip install .` (not editable) into a clean virtual
environment gives a `wingman` that upgrades a database and serves, from a folder far from the
checkout, with its statechart, migrations and demo server inside the installed package, and with
nothing installed under the generic top-level names `engine`, `api` or `migrations`.

The install takes the dependencies from PyPI (pip's cache makes a second run quick); the checkout
is copied first, so that building the wheel leaves nothing behind in the working tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.daemon import REPO, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(900)


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listed.stdout.splitlines() if (REPO / name).is_file()]


@pytest.fixture(scope="module")
def installed() -> Path:
    """A clean venv with wingman installed from a copy of the checkout; yields its bin folder."""
    with tempfile.TemporaryDirectory(prefix="wingman-wheel-") as scratch:
        source = Path(scratch) / "source"
        for name in tracked_files():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
        env_dir = Path(scratch) / "venv"
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        pip = subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input", str(source)],
            capture_output=True,
            text=True,
            timeout=800,
        )
        assert pip.returncode == 0, pip.stdout + pip.stderr
        shutil.rmtree(source)  # from here on, only the installed package can answer
        yield env_dir / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_installed_package_is_wingman_alone(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, wingman.engine.statechart as s, wingman.migrations as m\n"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in ('engine', 'api', 'migrations')}))\n"
        "print(s.STATECHART_PATH.is_file(), m.__file__)\n"
    )
    done = run(installed, "python", "-c", probe, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names, where = done.stdout.splitlines()
    assert names == '{"engine": false, "api": false, "migrations": false}'
    statechart_found, migrations_file = where.split(" ", 1)
    assert statechart_found == "True" and "site-packages/wingman/migrations" in migrations_file


def test_db_upgrade_then_serve_then_a_demo_start(installed: Path, tmp_path: Path) -> None:
    home = tmp_path / "node"
    home.mkdir()
    home.chmod(0o711)  # the demo server runs as a user of its own, who must reach its folder
    tmp_path.chmod(0o711)
    port = free_port()
    # The first serve writes ./wingman.yml with a demo server; the demo starts; then an upgrade.
    first = subprocess.Popen(
        [str(installed / "wingman"), "serve", "--port", str(port)],
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        config_file = home / "wingman.yml"
        eventually(
            lambda: config_file.is_file() and "token" in config_file.read_text(),
            timeout=60,
            what="the first serve writes wingman.yml",
        )
        token = yaml.safe_load(config_file.read_text())["token"]

        def system() -> httpx.Response | None:
            try:
                return httpx.get(
                    f"http://127.0.0.1:{port}/api/system", headers={"Authorization": f"Bearer {token}"}, timeout=2
                )
            except httpx.HTTPError:
                return None

        answered = eventually(system, timeout=60, what="the installed daemon answers /api/system")
        assert answered.status_code == 200, answered.text
        page = httpx.get(f"http://127.0.0.1:{port}/ui/login", timeout=5)  # its templates shipped
        assert page.status_code == 200 and "Sign in" in page.text
        servers = httpx.get(
            f"http://127.0.0.1:{port}/api/servers", headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).json()
        assert len(servers) == 1, servers
        uuid = servers[0]["uuid"]
        started = httpx.post(
            f"http://127.0.0.1:{port}/api/servers/{uuid}/power",
            json={"action": "start"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert started.status_code == 202, started.text

        def state() -> str:
            one = httpx.get(
                f"http://127.0.0.1:{port}/api/servers/{uuid}", headers={"Authorization": f"Bearer {token}"}, timeout=5
            ).json()
            return one["state"]

        eventually(lambda: state() == "running", timeout=60, what="the demo server is running")
    finally:
        first.terminate()
        output = first.communicate(timeout=60)[0]
    assert first.returncode == 0, output
    upgraded = run(installed, "wingman", "db", "upgrade", cwd=home)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "database at revision" in upgraded.stdout


def test_the_console_script_is_the_one_installed(installed: Path, tmp_path: Path) -> None:
    done = run(installed, "wingman", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "serve" in done.stdout
    assert sys.prefix not in (installed / "wingman").read_text()  # the clean venv's, not this one's
