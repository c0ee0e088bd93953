"""The install log: `.wingman-install.log` in the server's folder, as Wings writes its
`<log_directory>/install/<uuid>.log` (a header with the server, the image, the entrypoint and the
variables, then everything the script printed), where the server's owner can read it.

The folder belongs to the server, whose code is hostile: the name may already be a link it
planted (to /etc/shadow, say). So the old log is unlinked (which leaves a link's target alone)
and the new one created relative to the folder's descriptor, without following anything, 0600
and owned by the server's user. A folder planted under the name is left alone, and no log is
written (the outcome says so).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from wingman.engine.environments.base import ServerUser
from wingman.engine.install_events import LAST_LINES, LINE_CHARS
from wingman.engine.preboot.folderfiles import create_fresh

LOG_NAME = ".wingman-install.log"
MAX_OUTPUT_BYTES = 20 * 1024 * 1024  # of the script's output kept in the log (Docker's default log driver keeps 5 MB)
CUT = "…"


def open_log(folder: Path, user: ServerUser | None) -> BinaryIO:
    """The log, new and empty, open for writing. Blocking; OSError when it cannot be written."""
    fd = create_fresh(folder, LOG_NAME)
    try:
        if user is not None:
            os.fchown(fd, user.uid, user.gid)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def header(uuid: str, image: str | None, entrypoint: str | None, environment: dict[str, str]) -> bytes:
    """Wings' header (with wingman named in its title), so a log reads the same from either daemon."""
    variables = "".join(f"  {name}={value}\n" for name, value in environment.items())
    return (
        "Pterodactyl Server Installation Log (wingman)\n\n"
        "|\n| Details\n| ------------------------------\n"
        f"  Server UUID:          {uuid}\n"
        f"  Container Image:      {image or ''}\n"
        f"  Container Entrypoint: {entrypoint or ''}\n\n"
        "|\n| Environment Variables\n| ------------------------------\n"
        f"{variables}\n"
        "|\n| Script Output\n| ------------------------------\n"
    ).encode("utf-8", "replace")


def last_lines(lines: list[str]) -> list[str]:
    """What an outcome keeps of the output: its last LAST_LINES lines, each cut to LINE_CHARS."""
    return [line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + CUT for line in lines[-LAST_LINES:]]
