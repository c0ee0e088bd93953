"""Pre-boot: the checks a start runs, in Wings' order, before any process is launched.

Each step either passes or raises `PrebootFailure` naming the step, which the power engine records
as a `preboot.check_failed` event. Configuration files (step 5) are the exception, as in Wings: a
failure there is recorded but the boot goes on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from wingman.engine.environments.base import LaunchSpec, Runtime, RuntimeFailure, ServerUser
from wingman.engine.environments.server_users import FOLDER_MODE, ServerUsers, take_over
from wingman.engine.preboot.configfiles import apply_config_files
from wingman.engine.preboot.folderfiles import create_fresh
from wingman.engine.servers.definition import ServerConfig
from wingman.engine.servers.environment import server_environment

log = structlog.get_logger("wingman.preboot")


class PrebootFailure(Exception):
    def __init__(self, check: str, reason: str):
        super().__init__(f"pre-boot check {check!r} failed: {reason}")
        self.check = check
        self.reason = reason


@dataclass
class PrebootResult:
    spec: LaunchSpec
    warnings: list[str] = field(default_factory=list)


def disk_usage_bytes(folder: Path) -> int:
    """Bytes used under `folder` (allocated blocks, as `du` counts), not following symlinks."""
    total = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            total += st.st_blocks * 512
    return total


def check_disk(config: ServerConfig, folder: Path) -> None:
    if config.disk_space <= 0:
        return
    used = disk_usage_bytes(folder)
    limit = config.disk_space * 1024 * 1024
    if used > limit:
        raise PrebootFailure(
            "disk", f"the server folder uses {used / 1048576:.1f} MiB, over its {config.disk_space} MiB limit"
        )


def check_permissions(folder: Path, user: ServerUser | None) -> None:
    """The folder exists, belongs to the server's own user (everything in it too, as Wings sees
    to at every boot), is private to it, and that user can write it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrebootFailure("permissions", f"cannot create the server folder {folder}: {exc.strerror}") from None
    if folder.is_symlink() or not folder.is_dir():
        raise PrebootFailure("permissions", f"{folder} is not a folder")
    try:
        if user is not None:
            changed = take_over(folder, user)
            if changed:
                log.info("server folder given to its user", folder=str(folder), uid=user.uid, entries=changed)
        else:
            os.chmod(folder, FOLDER_MODE)
    except OSError as exc:
        raise PrebootFailure(
            "permissions", f"cannot give {folder} to the server's user: {exc.strerror or exc}"
        ) from None
    try:
        _probe_writable(folder)
    except OSError as exc:
        raise PrebootFailure("permissions", f"the server folder is not writable: {exc.strerror}") from None


WRITE_PROBE = ".wingman-write-test"


def _probe_writable(folder: Path) -> None:
    """Create and remove a file in the folder, never following a link the server planted there."""
    os.close(create_fresh(folder, WRITE_PROBE))
    os.unlink(folder / WRITE_PROBE)  # the entry itself: a link there would be removed, not followed


async def run_preboot(
    config: ServerConfig,
    runtime: Runtime,
    folder: Path,
    users: ServerUsers,
    daemon_config: dict[str, Any],
    on_soft_failure: Callable[[str, str], Awaitable[None]],
    note: Callable[[str], None] = lambda text: None,
) -> PrebootResult:
    """Steps 2 to 6, on the configuration that step 1 (sync, done by the starter) settled on.
    `note` hears what is being done, in Wings' words, for the server's console."""
    if config.suspended:
        raise PrebootFailure("suspension", "the server is suspended")

    env = server_environment(config, daemon_config.get("system", {}).get("timezone") or "UTC")
    try:
        user = users.for_server(config.uuid)
    except RuntimeFailure as exc:
        raise PrebootFailure("permissions", str(exc)) from None
    spec = LaunchSpec(config=config, folder=folder, environment=env, user=user)
    try:
        await runtime.clear_for_launch(config)  # in the background, beside the steps below
        await runtime.prepare(spec, note)  # the image pulled (Docker) before check_limits inspects it
        warnings = await runtime.check_limits(spec)
    except RuntimeFailure as exc:
        raise PrebootFailure("environment", str(exc)) from None

    await asyncio.to_thread(folder.mkdir, mode=FOLDER_MODE, parents=True, exist_ok=True)
    await asyncio.to_thread(check_disk, config, folder)

    result = PrebootResult(spec=spec, warnings=warnings)
    if config.configs:
        note("Updating process configuration files...")
        settings = config.definition.get("settings", {})
        raw = config.definition.get("process_configuration", {}).get("configs", [])
        outcomes = await asyncio.to_thread(apply_config_files, folder, raw, settings, config.environment, daemon_config)
        for outcome in outcomes:
            result.warnings.extend(f"{outcome.file}: {w}" for w in outcome.warnings)
            if not outcome.ok:
                await on_soft_failure("config_files", outcome.error or f"{outcome.file}: failed")

    note("Ensuring file permissions are set correctly, this could take a few seconds...")
    await asyncio.to_thread(check_permissions, folder, user)
    return result
