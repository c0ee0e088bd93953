"""Who a game server runs as: a user of its own, never root and never the daemon's user.

Game servers run code their users upload, so each one gets a uid (and a gid of the same number)
that nothing else on the machine has, as systemd's `DynamicUser` does: taken from
`system.server_users` (by default 200000 to 299999, far above the system's own users and the
users of people), with no name in /etc/passwd and no supplementary group. Its folder is owned by
that uid and is 0700, so another server cannot read it; the daemon's own files are 0600 in
folders that the server's uid may at most traverse (engine.private_files).

The folder's owner is the record of which uid a server has: a restart of the daemon, a
reinstall of wingman or a move to another database keeps it, and a folder created by an older
version (owned by root, or by `system.user`) is taken over at its next start. A uid held by one
folder is never handed to another server; two folders found owned by the same uid (a copied
folder) keep it for one of them only, and the other is given a new one.

How the process loses the daemon's powers, per runtime:
- a local process: `setpriv` (util-linux) sets the uid and gid, clears supplementary groups and
  every capability set (the bounding set too, so a setuid program cannot give them back) and sets
  `no_new_privs` before it runs the server's command (engine.environments.local.runtime);
- a container: Docker's `User` is `uid:gid`, with no-new-privileges, dropped capabilities and a
  read-only root (engine.environments.docker.spec).

A daemon that does not run as root cannot switch users: it refuses to start a server, unless the
node opted in to `system.insecure_run_servers_as_daemon_user` (a demo on one's own machine; the
server can then read everything the daemon can, its token included).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import structlog

from wingman.engine.environments.base import RuntimeFailure, ServerUser

log = structlog.get_logger("wingman.server_users")

FOLDER_MODE = 0o700  # the server's own folder: its user only


def privilege_drop(user: ServerUser) -> list[str]:
    """The command that runs what follows it as `user`, with nothing of root left."""
    setpriv = shutil.which("setpriv") or ("/usr/bin/setpriv" if os.path.exists("/usr/bin/setpriv") else None)
    if setpriv is None:
        raise RuntimeFailure(
            "running servers as users of their own needs the `setpriv` program (util-linux), which is not installed"
        )
    return [
        setpriv,
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


class ServerUsers:
    """Hands each server its uid, and keeps two servers from ever sharing one."""

    def __init__(self, data_directory: Path, first_uid: int, count: int, insecure_as_daemon_user: bool = False):
        self.data_directory = Path(data_directory)
        self.first_uid = first_uid
        self.count = count
        self.insecure_as_daemon_user = insecure_as_daemon_user
        self._by_uid: dict[int, str] | None = None  # uid -> server uuid, read from the folders once
        self._by_server: dict[str, int] = {}
        self._next = first_uid

    @property
    def switches_users(self) -> bool:
        return os.geteuid() == 0

    def for_server(self, uuid: str) -> ServerUser | None:
        """The user `uuid` runs as; None when it runs as the daemon's own user (the insecure opt-in
        of a daemon that is not root). Raises RuntimeFailure when the server cannot run here."""
        if not self.switches_users:
            if self.insecure_as_daemon_user:
                return None
            raise RuntimeFailure(
                f"the daemon runs as uid {os.geteuid()}, not root, so it cannot run this server as a user of its "
                "own, and the server would reach everything the daemon can (its token, its database, its keys). "
                "Run the daemon as root (each server then runs as an unprivileged user of its own), or, for a "
                "demo on your own machine only, set system.insecure_run_servers_as_daemon_user: true"
            )
        uid = self._by_server.get(uuid)
        if uid is None:
            uid = self._assign(uuid)
        return ServerUser(uid, uid)

    def _owners(self) -> dict[int, str]:
        """Which uid each existing server folder holds (the folders are the record)."""
        if self._by_uid is None:
            self._by_uid = {}
            try:
                entries = list(os.scandir(self.data_directory))
            except FileNotFoundError:
                entries = []
            for entry in sorted(entries, key=lambda e: e.name):  # the same winner of a shared uid every time
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode) and self._in_range(st.st_uid) and st.st_uid not in self._by_uid:
                    self._by_uid[st.st_uid] = entry.name
                    self._by_server[entry.name] = st.st_uid
        return self._by_uid

    def _in_range(self, uid: int) -> bool:
        return self.first_uid <= uid < self.first_uid + self.count

    def _assign(self, uuid: str) -> int:
        owners = self._owners()
        if uuid in self._by_server:
            return self._by_server[uuid]
        for _ in range(self.count):
            uid, self._next = self._next, self.first_uid + (self._next + 1 - self.first_uid) % self.count
            if uid not in owners:
                owners[uid] = uuid
                self._by_server[uuid] = uid
                return uid
        raise RuntimeFailure(
            f"every uid of system.server_users ({self.count} from {self.first_uid}) is taken: widen the range"
        )


def take_over(folder: Path, user: ServerUser) -> int:
    """Make `folder` and everything in it belong to `user` (as Wings does at every boot), the
    folder itself 0700. Returns how many entries changed owner.

    The folder's content was written by the server, and so may be hostile: nothing is followed
    (symlinks are changed themselves, not what they point to; subfolders are walked by their
    descriptors, so a folder swapped for a symlink meanwhile is not entered), and a file with
    more than one link is left as it is, since its other name may be outside the folder (a link
    made by a server that ran as root under an older version)."""
    changed = 0
    top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(top)
        if (st.st_uid, st.st_gid) != (user.uid, user.gid):
            os.fchown(top, user.uid, user.gid)
            changed += 1
        if stat.S_IMODE(st.st_mode) != FOLDER_MODE:
            os.fchmod(top, FOLDER_MODE)
        changed += _take_over_below(top, user)
    finally:
        os.close(top)
    return changed


def _take_over_below(dir_fd: int, user: ServerUser) -> int:
    changed = 0
    with os.scandir(dir_fd) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                continue  # replaced meanwhile
            try:
                if (st.st_uid, st.st_gid) != (user.uid, user.gid):
                    os.fchown(sub, user.uid, user.gid)
                    changed += 1
                changed += _take_over_below(sub, user)
            finally:
                os.close(sub)
            continue
        if (st.st_uid, st.st_gid) == (user.uid, user.gid):
            continue
        if not stat.S_ISLNK(st.st_mode) and st.st_nlink > 1:
            log.warning("a file with several links in a server folder is left to its owner", file=name, owner=st.st_uid)
            continue
        try:
            os.chown(name, user.uid, user.gid, dir_fd=dir_fd, follow_symlinks=False)
            changed += 1
        except FileNotFoundError:
            continue
    return changed
