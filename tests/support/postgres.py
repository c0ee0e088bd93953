"""A throwaway PostgreSQL cluster for the tests: initdb in a temp folder, a free port, a socket
in the same folder, run as the `postgres` system user (PostgreSQL refuses to run as root).
Installed by .ci/system.sh; under CI a missing server fails the tests instead of skipping them."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
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


# -- a primary and its synchronous standby, for failover --------------------------------------------


class ReplicatedPair:
    """Two real clusters in one folder: a primary (`synchronous_standby_names = '*'`,
    `synchronous_commit = on`: a commit is acknowledged once the standby has it) and a standby
    made from it with `pg_basebackup -R`, streaming. `kill_primary` SIGKILLs the primary's
    postmaster and every backend of it, as a machine that dies; `promote` is what Patroni does.

    The standby is started without the synchronous setting: promoted, it is a primary alone, and
    a primary waiting for a standby that will never come would hang every commit."""

    def __init__(self, bindir: Path, folder: Path):
        self.bindir, self.folder = bindir, folder
        self.ports = {"primary": free_port(), "standby": free_port()}

    def data(self, which: str) -> Path:
        return self.folder / which

    def _start(self, which: str, *settings: str) -> None:
        options = f"-p {self.ports[which]} -k {self.folder} -c listen_addresses='' -c fsync=off " + " ".join(settings)
        _as_postgres(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data(which)), "-l", str(self.folder / f"{which}.log")]
            + ["-w", "-t", "60", "-o", options, "start"]
        )

    def psql(self, which: str, sql: str, database: str = "postgres") -> str:
        args = ["psql", "-h", str(self.folder), "-p", str(self.ports[which]), "-U", "postgres", "-d", database]
        return _as_postgres([*args, "-tAc", sql]).stdout.strip()

    def start(self) -> None:
        _as_postgres([str(self.bindir / "initdb"), "-D", str(self.data("primary")), "-U", "postgres", "-A", "trust"])
        self._start("primary", "-c synchronous_standby_names='*'", "-c synchronous_commit=on")
        _as_postgres(
            [str(self.bindir / "pg_basebackup"), "-h", str(self.folder), "-p", str(self.ports["primary"])]
            + ["-U", "postgres", "-D", str(self.data("standby")), "-R", "-X", "stream", "--no-sync"]
        )
        self._start("standby")
        deadline = time.monotonic() + 60
        while self.psql("primary", "SELECT sync_state FROM pg_stat_replication") != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError("the standby never became synchronous")
            time.sleep(0.05)

    def create_database(self, name: str) -> None:
        self.psql("primary", f"CREATE DATABASE {name}")

    def url(self, database: str) -> str:
        """The multi-host URL a daemon is given: whichever of the two accepts writes."""
        hosts = "&".join(f"host={self.folder}:{port}" for port in self.ports.values())
        return f"postgresql+asyncpg://postgres@/{database}?{hosts}&target_session_attrs=read-write"

    def url_of(self, which: str, database: str) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.folder}&port={self.ports[which]}"

    def kill_primary(self) -> None:
        postmaster = int((self.data("primary") / "postmaster.pid").read_text().split()[0])
        family = [postmaster] + [pid for pid, parent in _parents().items() if parent == postmaster]
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop_standby(self) -> None:
        """The standby gone: the primary's commits wait for it (written there, not yet answered)."""
        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data("standby")), "-m", "fast", "-w", "stop"])

    def start_standby(self) -> None:
        self._start("standby")

    def promote(self) -> None:
        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data("standby")), "-w", "-t", "60", "promote"])

    def stop(self) -> None:
        self.kill_primary() if (self.data("primary") / "postmaster.pid").exists() else None
        for which in ("standby", "primary"):
            pid_file = self.data(which) / "postmaster.pid"
            if pid_file.exists():
                subprocess.run(
                    _runuser([str(self.bindir / "pg_ctl"), "-D", str(self.data(which)), "-m", "immediate", "stop"]),
                    capture_output=True,
                )


def _parents() -> dict[int, int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def _runuser(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.getuid() == 0 else args


@pytest.fixture
def pg_replicated():
    """A primary with a synchronous standby (ReplicatedPair), torn down after the test."""
    bindir = _bindir()
    if bindir is None:
        message = "PostgreSQL server binaries are not installed (bash .ci/system.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="wingman-pg-pair-"))
    if os.getuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
    pair = ReplicatedPair(bindir, folder)
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(folder, ignore_errors=True)
