"""The console of a local server is a file, followed: it outlives the daemon.

A server's stdout and stderr go to a regular file opened for appending, not to a pipe: a pipe
whose reader (the daemon) is gone would kill the server with SIGPIPE at its next line, and a
daemon restart must find the console where it left it. One inotify descriptor follows every
server's file from the event loop, so there is no thread, and no timer, per server.

Memory and disk stay bounded whatever the server prints:
- a file read to its end is truncated once it passes `TRUNCATE_AT` (the server appends, so its
  next write lands at the new start; what it writes in that instant can be lost);
- a follower more than `SKIP_AHEAD` behind (the server flooded while the daemon was away, or
  faster than the throttle lets it be read) jumps, at once and throttle or not, to the file's
  last `RECENT_ON_ADOPTION` bytes, says how much it skipped, and the file is cut back: a file
  cannot grow past that while the daemon is there (the run directory is usually in memory);
- each wakeup reads at most `READ_BUDGET` bytes of one file, and `OutputThrottle` spaces reads
  of a server that prints faster than the daemon wants to read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import structlog
from inotify_simple import INotify, flags

from wingman.engine.console.lines import LineSplitter, OutputThrottle

log = structlog.get_logger("wingman.process")

READ_BUDGET = 256 * 1024
TRUNCATE_AT = 1024 * 1024  # small: the file usually lives in memory (see engine.config run_directory)
SKIP_AHEAD = 16 * 1024 * 1024
RECENT_ON_ADOPTION = 64 * 1024  # bytes of an adopted console read back into its buffer


def _line_start(fd: int, at: int, size: int) -> int:
    """The first line boundary at or after `at` (0 when `at` is before the file's start)."""
    if at <= 0:
        return 0
    head = os.pread(fd, size - at, at)
    cut = head.find(b"\n")
    return at + cut + 1 if cut >= 0 else size


class FollowedFile:
    """One server's console file as the daemon reads it."""

    def __init__(self, owner: ConsoleFiles, fd: int, path: str, sink: Callable[[str], None], offset: int):
        self._owner = owner
        self.fd = fd
        self.path = path
        self.offset = offset
        self._lines = LineSplitter(sink)
        self._sink = sink
        self._throttle = OutputThrottle()
        self._later: asyncio.TimerHandle | None = None
        self.wd: int | None = None
        self.closed = False

    def pump(self) -> None:
        """Read what is new (up to the budget, and as the throttle allows); come back for the rest.
        A file too far ahead is cut back at once, throttle or not: it lives in memory."""
        if self.closed:
            return
        size = os.fstat(self.fd).st_size
        if size < self.offset:  # truncated behind our back (by a daemon before us)
            self.offset = 0
        skipped = size - self.offset > SKIP_AHEAD
        if skipped:
            # Too far behind: keep the latest output, from a line boundary, and say what went.
            resume = _line_start(self.fd, size - RECENT_ON_ADOPTION, size)
            self._lines.drop_partial()
            self._sink(f"[… {resume - self.offset} bytes of console output skipped]")
            self.offset = resume
            if self._later is not None:
                self._later.cancel()
                self._later = None
        elif self._later is not None:
            return  # a read is due later (throttled, or more to read): that one will see this too
        data = os.pread(self.fd, SKIP_AHEAD if skipped else READ_BUDGET, self.offset)
        self.offset += len(data)
        if data:
            self._lines.feed(data)
        if self.offset >= size and size >= TRUNCATE_AT:
            os.ftruncate(self.fd, 0)
            self.offset = 0
        more = self.offset < os.fstat(self.fd).st_size
        delay = self._throttle.delay_after(len(data)) if data and not skipped else 0.0
        if more or delay:
            self._later = asyncio.get_running_loop().call_later(delay, self._again)

    def _again(self) -> None:
        self._later = None
        self.pump()

    def drain(self) -> None:
        """Everything left, at once (the server has exited: nothing more will come)."""
        if self._later is not None:
            self._later.cancel()
            self._later = None
        while not self.closed:
            data = os.pread(self.fd, READ_BUDGET, self.offset)
            if not data:
                break
            self.offset += len(data)
            self._lines.feed(data)
        self._lines.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._later is not None:
            self._later.cancel()
        self._owner.forget(self)
        os.close(self.fd)


class ConsoleFiles:
    """Every followed console file of one runtime, behind one inotify descriptor."""

    def __init__(self) -> None:
        self._inotify: INotify | None = None
        self._by_wd: dict[int, FollowedFile] = {}

    def _ensure(self) -> INotify:
        if self._inotify is None:
            self._inotify = INotify(nonblocking=True)  # close-on-exec: no server inherits it
            asyncio.get_running_loop().add_reader(self._inotify.fileno(), self._on_events)
        return self._inotify

    def follow(self, fd: int, path: str, sink: Callable[[str], None], recent: int = 0) -> FollowedFile:
        """Follow the file open at `fd` (its `path` is what inotify watches), from its end less
        `recent` bytes (0: from its start, for a file the daemon has just created)."""
        size = os.fstat(fd).st_size
        start = _line_start(fd, size - recent, size) if recent else 0
        followed = FollowedFile(self, fd, path, sink, start)
        followed.wd = self._ensure().add_watch(path, flags.MODIFY)
        self._by_wd[followed.wd] = followed
        followed.pump()
        return followed

    def forget(self, followed: FollowedFile) -> None:
        if followed.wd is not None and self._by_wd.get(followed.wd) is followed:
            del self._by_wd[followed.wd]
            try:
                if self._inotify is not None:  # it is, while a file is followed
                    self._inotify.rm_watch(followed.wd)
            except OSError:  # the file is gone, and its watch with it
                pass

    def _on_events(self) -> None:
        if self._inotify is None:  # closed: close() took the reader away with it
            return
        try:
            events = self._inotify.read(timeout=0)
        except BlockingIOError:
            return
        if any(e.mask & flags.Q_OVERFLOW for e in events):  # events were lost: look at every file
            targets = list(self._by_wd.values())
        else:
            targets = [self._by_wd[e.wd] for e in events if e.wd in self._by_wd]
        for followed in dict.fromkeys(targets):
            try:
                followed.pump()
            except OSError as exc:
                log.warning("console file unreadable", path=followed.path, error=str(exc))

    def close(self) -> None:
        for followed in list(self._by_wd.values()):
            followed.close()
        if self._inotify is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._inotify.fileno())
            except RuntimeError:  # the loop is already closed
                pass
            self._inotify.close()
            self._inotify = None
