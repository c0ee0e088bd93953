"""A tiny stand-in for a game server, used by the demo and the tests.

It behaves like the real ones where the daemon cares: prints a few boot lines, then a ready line
after a moment; answers console commands on stdin (`say`, `list`, `crash`, `hang`); exits
cleanly on `stop` (and on SIGTERM/SIGINT), printing what it got.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def on_signal(signum: int, _frame: FrameType | None) -> None:
    if os.environ.get("IGNORE_SIGNALS") == "1":
        out(f"ignoring {signal.Signals(signum).name}")
        return
    out(f"got {signal.Signals(signum).name}, saving world and exiting")
    sys.exit(0)


def main() -> int:
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out(f"Loading world {os.environ.get('WORLD', 'demo')} ...")
    time.sleep(float(os.environ.get("BOOT_SECONDS", "1.0")))
    if os.environ.get("FAIL_AT_BOOT") == "1":
        out("Fatal: could not bind port")
        return 3
    out(f"MOTD: {os.environ.get('MOTD', 'welcome')}")
    out("Server started")
    for raw in sys.stdin:
        command = raw.strip()
        if command == "stop":
            if os.environ.get("IGNORE_STOP") == "1":
                out("stop ignored")
                continue
            out("Stopping server")
            return 0
        if command == "crash":
            out("Segmentation fault (simulated)")
            return 139
        if command == "list":
            out("There are 0 of a max of 20 players online")
        elif command.startswith("say "):
            out(f"[Server] {command[4:]}")
        elif command:
            out(f"Unknown command: {command}")
    # stdin closed: keep running until a signal, like a detached server would
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
