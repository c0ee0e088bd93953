"""Which keys a config file may hold: wingman's own, and Wings' ones that wingman does not use.

A Panel writes each node's `config.yml` for Wings (and Wings writes back every key it knows), so a
node's file holds keys wingman has no use for (`system.sftp`, `api.upload_limit`,
`allowed_mounts`...). Those are taken out and named, so the operator sees once what is ignored. A
key that is neither Wings' nor wingman's is a mistake (a typo silently ignored is a setting that
never applies): it is refused, with the closest known key suggested."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel

# Wings' config keys by section (pterodactyl/wings config/config.go and config_docker.go). Those
# wingman models too are simply its own; the rest are ignored. Sections wingman does not model at
# all (throttles, system.sftp...) are ignored whole, so their inner keys need no list.
WINGS_KEYS: dict[tuple[str, ...], frozenset[str]] = {
    (): frozenset(
        {
            "debug",
            "app_name",
            "uuid",
            "token_id",
            "token",
            "api",
            "system",
            "docker",
            "throttles",
            "remote",
            "remote_query",
            "allowed_mounts",
            "allowed_origins",
            "allow_cors_private_network",
            "ignore_panel_config_updates",
        }
    ),
    ("api",): frozenset({"host", "port", "ssl", "disable_remote_download", "upload_limit", "trusted_proxies"}),
    ("api", "ssl"): frozenset({"enabled", "cert", "key"}),
    ("remote_query",): frozenset({"timeout", "boot_servers_per_page"}),
    ("system",): frozenset(
        {
            "root_directory",
            "log_directory",
            "data",
            "archive_directory",
            "backup_directory",
            "tmp_directory",
            "username",
            "timezone",
            "user",
            "passwd",
            "machine_id",
            "disk_check_interval",
            "activity_send_interval",
            "activity_send_count",
            "check_permissions_on_boot",
            "enable_log_rotate",
            "websocket_log_count",
            "sftp",
            "crash_detection",
            "backups",
            "transfers",
            "openat_mode",
        }
    ),
    ("system", "crash_detection"): frozenset({"enabled", "detect_clean_exit_as_crash", "timeout"}),
    ("docker",): frozenset(
        {
            "network",
            "domainname",
            "registries",
            "tmpfs_size",
            "container_pid_limit",
            "installer_limits",
            "overhead",
            "use_performant_inspect",
            "userns_mode",
            "log_config",
        }
    ),
}


class UnknownKeys(Exception):
    """Keys neither Wings' nor wingman's; the message names each with a suggestion."""


def sort_keys(raw: dict[str, Any], model: type[BaseModel]) -> tuple[dict[str, Any], list[str]]:
    """`raw` without Wings' keys that `model` does not use, and those keys' dotted names.
    Raises UnknownKeys for any key that is neither."""
    ignored: list[str] = []
    unknown: list[str] = []
    kept = _sort(raw, model, (), ignored, unknown)
    if unknown:
        raise UnknownKeys("; ".join(unknown))
    return kept, ignored


def _sort(
    raw: dict[str, Any], model: type[BaseModel], path: tuple[str, ...], ignored: list[str], unknown: list[str]
) -> dict[str, Any]:
    fields = {(f.alias or name): f for name, f in model.model_fields.items() if not f.exclude}
    wings = WINGS_KEYS.get(path, frozenset())
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = ".".join((*path, str(key)))
        if key in fields:
            inner = _model_of(fields[key].annotation)
            if inner is not None and isinstance(value, dict):
                value = _sort(value, inner, (*path, key), ignored, unknown)
            kept[key] = value
        elif key in wings:
            ignored.append(dotted)
        else:
            unknown.append(f"{dotted}: unknown key{_suggestion(str(key), [*fields, *wings])}")
    return kept


def _suggestion(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    return f" (known here: {', '.join(sorted(set(known)))})"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The config section a field holds (`Foo` or `Foo | None`), if it is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None
