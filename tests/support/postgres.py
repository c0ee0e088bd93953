"""A throwaway PostgreSQL cluster for the tests: initdb in a temp folder, a free port, a socket
in the same folder, run as the `postgres` system user (PostgreSQL refuses to run as root).
Installed by .ci/system.sh; under CI a missing server fails the tests instead of skipping them."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid as uuidlib
from pathlib import Path

import pytest

from tests.support.daemon import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(args: list[str], **kw) -> subprocess.CompletedProcess:
    if os.getuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def pg_cluster():
    bindir = _bindir()
    if bindir is None:
        message = "PostgreSQL server binaries are not installed (bash .ci/system.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="wingman-pg-"))
    data = folder / "data"
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
    port = free_port()
    _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"])
    _as_postgres(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {folder} -c listen_addresses='' -c fsync=off",
            "start",
        ]
    )
    try:
        yield {"host": str(folder), "port": port, "bindir": bindir}
    finally:
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster):
    """A fresh database in the session's cluster, as an asyncpg URL."""
    name = "t_" + uuidlib.uuid4().hex[:12]
    _as_postgres(
        [
            "psql",
            "-h",
            pg_cluster["host"],
            "-p",
            str(pg_cluster["port"]),
            "-U",
            "postgres",
            "-c",
            f"CREATE DATABASE {name}",
        ]
    )
    return f"postgresql+asyncpg://postgres@/{name}?host={pg_cluster['host']}&port={pg_cluster['port']}"
