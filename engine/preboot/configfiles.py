"""Pre-boot step 5: rewrite a server's configuration files before it boots, as Wings does
(pterodactyl/wings parser/parser.go, parser/helpers.go, server/config_parser.go). The Panel expands
{{server.*}} and {{env.*}} before Wings sees the list (panel EggConfigurationService.php); a
standalone wingman has no Panel in front of it, so that happens here too, with the Panel's names.
Where Wings is known to go wrong we do better, and the comment at the spot says so."""

from __future__ import annotations

import errno
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wingman.engine.preboot.configfile_formats import PARSERS
from wingman.engine.preboot.configfile_rules import ConfigFileError, Doc, expander, rules_of
from wingman.engine.preboot.folderfiles import FolderFileError, locate, read_text, write_text

__all__ = ["ConfigFileError", "ConfigFileResult", "apply_config_files"]


@dataclass
class ConfigFileResult:
    file: str
    ok: bool
    error: str | None = None  # human sentence, e.g. "server.properties: line 3: ..."
    changed: bool = False
    # Not failures, but worth an operator's eye: unknown placeholders, unusable if_value regexes.
    warnings: list[str] = field(default_factory=list)


def _apply_one(folder: pathlib.Path, entry: object, expand: Callable[[str], str], warn: list[str]) -> bool:
    if not isinstance(entry, dict):
        raise ConfigFileError("the entry is not a mapping")
    name = entry.get("parser")
    if (parser := PARSERS.get(name) if name is not None else None) is None:  # Wings ignores it (after creating it)
        raise ConfigFileError(f"parser {name!r} is not supported; use one of {', '.join(PARSERS)}")
    rules = rules_of(entry, expand)
    root, parts = locate(folder, entry.get("file"))
    if (existing := read_text(root, parts)) is None and entry["parser"] == "file":
        return False  # no lines to match; creating it could stop the game writing its defaults
    new = parser(text := existing[0] if existing else "", rules, warn)
    if existing is not None and new == text:
        return False  # untouched files keep their bytes and mtime, so applying twice is a no-op
    write_text(root, parts, new, existing[1] if existing else None)  # missing: created, as ufs Touch does
    return True


def apply_config_files(
    folder: pathlib.Path,
    configs: Sequence[object],
    settings: Doc,
    environment: dict[str, str],
    daemon_config: Doc | None = None,
) -> list[ConfigFileResult]:
    """Apply each entry of process_configuration.configs, in order; one result per entry.
    A failing file is reported and never stops the others (Wings logs it and boots anyway)."""
    results = []
    for n, entry in enumerate(configs or [], 1):
        name = entry.get("file") if isinstance(entry, dict) else None
        result = ConfigFileResult(file=name if isinstance(name, str) and name else f"configs[{n}]", ok=True)
        try:
            expand = expander(settings or {}, environment or {}, daemon_config or {}, result.warnings)
            result.changed = _apply_one(pathlib.Path(folder), entry, expand, result.warnings)
        except FolderFileError as e:
            result.ok, result.error = False, f"{result.file}: {e}"
        except OSError as e:
            reason = "a symlink appeared in the path; refused" if e.errno == errno.ELOOP else e.strerror or str(e)
            result.ok, result.error = False, f"{result.file}: {reason}"
        except Exception as e:  # noqa: BLE001 - a bug on one file must not cost the others their update
            result.ok, result.error = False, f"{result.file}: {type(e).__name__}: {e}"
        results.append(result)
    return results
