"""A hostile game server, run as a local process by a real daemon (as root, as on a node), tries
to reach what uploaded code must never reach, and finds nothing: the daemon's config (its token),
database, checkpoint key and checkpoints; the daemon's /proc entries; another server's folder;
a signal or a ptrace on the daemon or another server; root again, through setuid or a setuid
program. It can use its own folder.

The node's folders here are world-readable on purpose (0755 parents, as an operator might leave
them): what keeps the server out is the daemon's own modes and the server's own user, not a
private test folder above everything."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.daemon import SERVER_PYTHON, DaemonProcess, definition, kill_leftovers, shared_file
from tests.support.http import logs, power, processes_under
from tests.support.waiting import eventually

HOSTILE = r"""
import json, os, subprocess, sys

print("Server started", flush=True)
targets = json.loads(sys.stdin.readline())
found = {}


def attempt(name, action):
    try:
        action()
        found[name] = "reached"
    except OSError as exc:
        found[name] = "refused: " + (exc.strerror or type(exc).__name__)


def read(path):
    with open(path, "rb") as f:
        f.read(1)


def open_for_writing(path):
    open(path, "ab").close()  # the permission check is the point: nothing is written


def open_memory(pid):
    # Opening another process's memory takes the same permission as ptrace-attaching to it (the
    # kernel's PTRACE_MODE_ATTACH check), without stopping it.
    open(f"/proc/{pid}/mem", "rb").close()


status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
found["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()]
found["capabilities"] = {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
found["no_new_privs"] = status["NoNewPrivs"].strip()
for path in targets["read"]:
    attempt("read " + path, lambda p=path: read(p))
for path in targets["write"]:
    attempt("write " + path, lambda p=path: open_for_writing(p))
for path in targets["list"]:
    attempt("list " + path, lambda p=path: os.listdir(p))
for name, pid in targets["pids"].items():
    attempt("signal " + name, lambda p=pid: os.kill(p, 0))
    attempt("ptrace " + name, lambda p=pid: open_memory(p))
attempt("setuid 0", lambda: os.setuid(0))
attempt("setgid 0", lambda: os.setgid(0))
found["setuid program runs as"] = subprocess.run([targets["setuid_id"], "-u"], capture_output=True,
                                                 text=True).stdout.strip()
attempt("own folder", lambda: open("mine.txt", "w").write("mine"))
print("PROBE " + json.dumps(found, sort_keys=True), flush=True)
for line in sys.stdin:
    if line.strip() == "stop":
        break
"""


@pytest.fixture
def open_node():
    """A daemon folder under /tmp whose parents anyone may traverse and list."""
    folder = Path(tempfile.mkdtemp(prefix="wingman-node-"))
    folder.chmod(0o755)
    yield folder
    kill_leftovers(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def setuid_id(open_node):
    """A setuid-root copy of `id`: without no_new_privs it would say 0."""
    path = open_node / "setuid-id"
    shutil.copyfile(shutil.which("id"), path)
    os.chmod(path, 0o4755)
    return path


def probe_result(d: DaemonProcess, uuid: str) -> dict:
    line = eventually(lambda: next((x for x in logs(d, uuid) if x.startswith("PROBE ")), None), what="the probe")
    return json.loads(line[len("PROBE ") :])


def send(d: DaemonProcess, uuid: str, line: str) -> None:
    with d.client() as c:
        assert c.post(f"/api/servers/{uuid}/commands", json={"commands": [line]}).status_code == 204


def test_a_hostile_local_server_reaches_nothing_of_the_daemon_or_its_neighbours(open_node, setuid_id):
    hostile = definition(
        invocation=f"{SERVER_PYTHON} -u {shared_file('hostile.py', HOSTILE)}", stop={"type": "command", "value": "stop"}
    )
    neighbour = definition()
    uuid, other = hostile["settings"]["uuid"], neighbour["settings"]["uuid"]
    d = DaemonProcess(open_node / "node", servers=[hostile, neighbour]).start()
    try:
        var = d.folder / "var"
        # The test wrote the config as most tools would (0644): the daemon says so at start.
        assert "holds the node token and is mode 0644" in d.read_log()
        d.config_path.chmod(0o600)
        assert d.wait_operation(power(d, other, "start")["id"])["status"] == "succeeded"
        secret = var / "volumes" / other / "world.dat"
        secret.write_text("the neighbour's world")
        neighbour_pids = eventually(lambda: processes_under(var / "volumes" / other), what="the neighbour")
        assert d.wait_operation(power(d, uuid, "start")["id"])["status"] == "succeeded"

        private = [d.config_path, var / "wingman.db", var / "checkpoint-key.pem", var / "checkpoints.jsonl"]
        eventually(lambda: all(p.exists() for p in private), what="every file the server must not reach")
        targets = {
            "read": [str(p) for p in private] + [f"/proc/{d.proc.pid}/environ", str(secret)],
            "write": [str(p) for p in private] + [str(var / "volumes" / other / "planted")],
            "list": [
                f"/proc/{d.proc.pid}/cwd",
                f"/proc/{d.proc.pid}/root",
                str(var),
                str(var / "volumes"),
                str(var / "volumes" / other),
            ],
            "pids": {"daemon": d.proc.pid, "neighbour": neighbour_pids[-1]},
            "setuid_id": str(setuid_id),
        }
        send(d, uuid, json.dumps(targets))
        found = probe_result(d, uuid)

        reached = sorted(k for k, v in found.items() if v == "reached")
        assert reached == ["own folder"], f"the server reached {reached}"
        uid = found["ids"][0]
        assert uid not in (0, os.getuid()) and found["ids"] == [uid, uid, uid, uid, []]
        assert set(found["capabilities"].values()) == {"0000000000000000"}, found["capabilities"]
        assert found["no_new_privs"] == "1"
        assert found["setuid program runs as"] == str(uid)
        refused = {k: v for k, v in found.items() if str(v).startswith("refused")}
        assert len(refused) == 2 * len(private) + 2 + 1 + 5 + 4 + 2  # every attempt was made, and refused
        assert not (var / "volumes" / other / "planted").exists()

        mine = var / "volumes" / uuid / "mine.txt"
        assert mine.read_text() == "mine" and mine.stat().st_uid == uid
        folder = (var / "volumes" / uuid).stat()
        assert folder.st_uid == uid and stat.S_IMODE(folder.st_mode) == 0o700
        assert (var / "volumes" / other).stat().st_uid not in (0, uid)  # each server a user of its own
        assert stat.S_IMODE(var.stat().st_mode) == 0o711 and stat.S_IMODE((var / "wingman.db").stat().st_mode) == 0o600
    finally:
        d.stop()


def test_an_isolated_server_starts_stops_and_is_adopted_by_the_next_daemon(open_node):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = DaemonProcess(open_node / "node", servers=[server]).start()
    try:
        assert d.wait_operation(power(d, uuid, "start")["id"])["status"] == "succeeded"
        d.stop()  # a clean shutdown leaves local servers running, to be adopted
        d = DaemonProcess(open_node / "node", servers=[server], port=d.port).start()
        with d.client() as c:
            assert c.get(f"/api/servers/{uuid}").json()["state"] == "running"
        send(d, uuid, "say still here")
        eventually(lambda: "[Server] still here" in logs(d, uuid), what="the adopted server's answer")
        assert d.wait_operation(power(d, uuid, "stop")["id"])["status"] == "succeeded"
        assert not processes_under(d.folder / "var" / "volumes" / uuid)
    finally:
        d.stop()


def test_a_folder_left_by_an_older_version_is_taken_over_and_nothing_outside_it(open_node):
    """A folder owned by root (as older versions left it), holding what a server that ran as root
    could have put there: a symlink and a hard link to files outside its folder."""
    outside = open_node / "outside"
    outside.write_text("root's")
    outside.chmod(0o600)
    linked = open_node / "linked"
    linked.write_text("root's too")
    linked.chmod(0o600)
    server = definition(
        invocation="cat world/level.dat; echo Server started; echo new > world/written; sleep 1000",
        stop={"type": "signal", "value": "SIGTERM"},
    )
    uuid = server["settings"]["uuid"]
    folder = open_node / "node" / "var" / "volumes" / uuid
    (folder / "world").mkdir(parents=True)
    (folder / "world" / "level.dat").write_text("level from before\n")
    (folder / "world" / "level.dat").chmod(0o600)
    (folder / "escape").symlink_to(outside)
    (folder / ".wingman-write-test").symlink_to(outside)  # the name pre-boot's write check uses
    os.link(linked, folder / "world" / "hardlink")
    d = DaemonProcess(open_node / "node", servers=[server]).start()
    try:
        assert d.wait_operation(power(d, uuid, "start")["id"])["status"] == "succeeded"
        assert "level from before" in logs(d, uuid)
        eventually(lambda: (folder / "world" / "written").exists(), what="the server's write into its folder")
        uid = folder.stat().st_uid
        assert uid != 0
        for path in (folder / "world", folder / "world" / "level.dat", folder / "world" / "written"):
            assert path.lstat().st_uid == uid, path
        assert (folder / "escape").lstat().st_uid == uid  # the link itself, not what it points to
        assert outside.stat().st_uid == 0 and linked.stat().st_uid == 0
        assert outside.read_text() == "root's" and linked.read_text() == "root's too"
    finally:
        d.stop()


def test_a_data_directory_closed_above_is_named_at_start(tmp_path):
    """pytest's tmp_path sits under /tmp/pytest-of-root, which is 0700: servers could not reach
    their folders there by absolute path, and the operator is told which folder closes the way."""
    assert not os.stat(tmp_path.parent.parent).st_mode & stat.S_IXOTH
    d = DaemonProcess(tmp_path / "node").start()
    try:
        assert "is closed to other users (no o+x)" in d.read_log()
    finally:
        d.stop()


LOADER_PROBE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Loaded into every process started with LD_PRELOAD naming it: says who loaded it. */
__attribute__((constructor)) static void loaded(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/loaded-as-%d", getenv("PROBE_DIR") ? getenv("PROBE_DIR") : "/nonexistent",
             (int)geteuid());
    close(open(path, O_WRONLY | O_CREAT, 0644));
}
"""


def test_the_servers_loader_variables_never_reach_a_process_that_holds_root(open_node):
    """Eggs set LD_LIBRARY_PATH=./linux64; a server can write its own folder. Were the launch's
    root processes (wrapper, prlimit, setpriv) started with the server's variables, a library the
    server planted there would run as root at its next start. Here the server's LD_PRELOAD names
    such a library: the server loads it (as its own user), and nothing running as root does."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler is needed (.ci/system.sh installs gcc)"
    probes = open_node / "probes"
    probes.mkdir()
    probes.chmod(0o777)
    server = definition(
        invocation="echo Server started; sleep 1000",
        stop={"type": "signal", "value": "SIGTERM"},
        env={"LD_PRELOAD": "./planted.so", "PROBE_DIR": str(probes)},
        build={"memory_limit": 512},
    )
    uuid = server["settings"]["uuid"]
    folder = open_node / "node" / "var" / "volumes" / uuid
    folder.mkdir(parents=True)
    source = open_node / "planted.c"
    source.write_text(LOADER_PROBE)
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(folder / "planted.so"), str(source)], check=True)
    d = DaemonProcess(open_node / "node", servers=[server]).start()
    try:
        assert d.wait_operation(power(d, uuid, "start")["id"])["status"] == "succeeded"
        uid = folder.stat().st_uid
        eventually(lambda: (probes / f"loaded-as-{uid}").exists(), what="the server loading its own library")
        assert not (probes / "loaded-as-0").exists(), "a process holding root loaded the server's library"
    finally:
        d.stop()
