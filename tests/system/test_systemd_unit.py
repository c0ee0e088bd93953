"""deploy/wingman.service, the unit docs/install.md installs: systemd's own checker accepts it,
and it keeps what a node needs (servers outliving a daemon restart, /run/wingman kept)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import unavailable

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "wingman.service"
INSTALLED_BINARY = "/opt/wingman/.venv/bin/wingman"


def _verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` of the unit with ExecStart pointing at this checkout's daemon
    (verify insists that the program exists)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (.ci/system.sh installs the systemd package)")
    binary = Path(sys.executable).parent / "wingman"
    path = folder / "wingman.service"
    path.write_text(unit_text.replace(INSTALLED_BINARY, str(binary)))
    return subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)


def _service_section() -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return dict(parser["Service"])


def test_systemd_accepts_the_unit(tmp_path):
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text, "docs/install.md installs the daemon there"
    result = _verify(text, tmp_path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_checker_would_catch_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt directive is reported."""
    result = _verify(UNIT.read_text().replace("KillMode=process", "KilMode=process"), tmp_path)
    assert "KilMode" in result.stderr


def test_servers_outlive_a_daemon_restart_and_their_consoles_stay():
    service = _service_section()
    assert service["KillMode"] == "process"  # only the daemon is signalled; its servers are adopted next start
    assert service["RuntimeDirectory"] == "wingman" and service["RuntimeDirectoryPreserve"] == "yes"
    assert service["User"] == "root"  # per-server uids need it
    for needed in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_CHOWN", "CAP_KILL"):
        assert needed in service["CapabilityBoundingSet"].split()
    assert service.get("PrivateTmp", "no") == "no"  # the Docker engine mounts install scripts from the host's view


@pytest.mark.parametrize("setting", ["NoNewPrivileges", "ProtectSystem", "ProtectHome", "RestrictSUIDSGID"])
def test_the_unit_is_hardened(setting):
    assert _service_section()[setting] in ("yes", "strict")
