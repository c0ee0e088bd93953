"""What a configuration file rewrite writes (engine.preboot.configfiles): the egg's replacements
as rules, their placeholders expanded as the Panel expands them ({{server.*}}, {{env.*}},
{{config.*}}), their values typed as Wings types them, and if_value's conditions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wingman.engine.preboot.folderfiles import FolderFileError
from wingman.engine.servers.patterns import BadPattern, compile_pattern

MISSING = object()
Doc = dict[str, Any]  # a JSON object: the definition's settings, an entry, the daemon's config


class ConfigFileError(FolderFileError):
    """A problem with one file; the message follows the file name in the result's sentence."""


_PLACEHOLDER = re.compile(r"{{\s?((?:server|env|config)\.[\w.-]+)\s?}}", re.ASCII)
# EggConfigurationService::replaceLegacyModifiers: the old daemon's SERVER_* variables.
_LEGACY_ENV = {"SERVER_MEMORY": "build.memory", "SERVER_IP": "build.default.ip", "SERVER_PORT": "build.default.port"}
# ServerConfigurationStructureService::returnLegacyFormat names, onto today's `settings` keys.
_LEGACY_SERVER = {
    "build.memory": "build.memory_limit",
    "build.io": "build.io_weight",
    "build.cpu": "build.cpu_limit",
    "build.disk": "build.disk_space",
    "build.image": "container.image",
    "build.default": "allocations.default",
}
# Wings exposes only docker.interface from its own config. We expose the caller's dict, minus
# anything that looks secret: server owners can read every file written here.
_SECRET = re.compile(r"token|secret|passw|database|key", re.I)


def text_of(value: Any) -> str:
    """A value as it is written into a text file (JSON spelling for bools and floats)."""
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (bool, float, dict, list)) else str(value)


def value_at(node: Any, tokens: list[str]) -> Any:
    for t in tokens:
        if isinstance(node, list) and t.isdigit() and int(t) < len(node):
            node = node[int(t)]
        else:
            node = node.get(t, MISSING) if isinstance(node, dict) else MISSING
    return node


def expander(settings: Doc, env: dict[str, str], config: Doc, warn: list[str]) -> Callable[[str], str]:
    def server(path: str) -> Any:
        for old, new in _LEGACY_SERVER.items():
            if path == old or path.startswith(old + "."):
                if (v := value_at(settings, (new + path[len(old) :]).split("."))) is not MISSING:
                    return v
        return value_at(settings, path.split("."))

    def lookup(key: str) -> Any:
        scope, _, path = re.sub(r"^server\.build\.env\.", "env.", key).partition(".")
        if scope == "server":
            return server(path)
        if scope == "env":
            legacy = server(_LEGACY_ENV[path]) if path in _LEGACY_ENV else MISSING
            return env.get(path, MISSING) if legacy is MISSING else legacy
        if _SECRET.search(path):
            warn.append(f"{{{{{key}}}}} is not exposed to server files; wrote ''")
            return None
        # parser.go templatableConfig: docker.interface is docker.network.interface
        alias = value_at(config, ["docker", "network", "interface"]) if path == "docker.interface" else MISSING
        return value_at(config, path.split(".")) if alias is MISSING else alias

    def one(m: re.Match[str]) -> str:
        if (value := lookup(m.group(1))) is MISSING:  # the Panel's Arr::get(..., '') default
            warn.append(f"unknown placeholder {{{{{m.group(1)}}}}} replaced with ''")
            return ""
        return text_of(value)

    return lambda s: _PLACEHOLDER.sub(one, s)


@dataclass
class Rule:
    match: str
    raw: Any  # replace_with, placeholders expanded; its type matters for json and yaml
    text: str
    if_value: str | None


def rules_of(entry: Doc, expand: Callable[[str], str]) -> list[Rule]:
    if not isinstance(replace := entry.get("replace") or [], list):
        raise ConfigFileError("'replace' must be a list")
    rules = []
    for n, r in enumerate(replace, 1):
        if not isinstance(r, dict) or not isinstance(r.get("match"), str) or not r["match"]:
            raise ConfigFileError(f"replacement {n} needs a non-empty string 'match'")
        # parser.go: eggs that were never upgraded still say "value" instead of "replace_with".
        raw = r["replace_with"] if "replace_with" in r else r.get("value", MISSING)
        if raw is MISSING or isinstance(raw, (dict, list)):
            raise ConfigFileError(f"replacement {n} ({r['match']}) needs a scalar 'replace_with'")
        raw, iv = expand(raw) if isinstance(raw, str) else raw, r.get("if_value")
        rules.append(Rule(r["match"], raw, text_of(raw), None if iv in (None, "") else text_of(iv)))
    return rules


def typed(raw: Any) -> Any:
    """helpers.go getKeyValue: booleans stay booleans and whatever strconv.Atoi accepts becomes an
    int, so "{{server.build.default.port}}" lands in JSON/YAML as 25565. Wings also turns floats
    into strings and null into "<nil>"; we keep those as given."""
    if raw is None or isinstance(raw, (bool, float)):
        return raw
    text = str(raw)
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) and -(2**63) <= int(text) < 2**63 else text


def conditional(current: str | None, rule: Rule, warn: list[str]) -> str | None:
    """The text to write, or None to leave the value alone. With if_value the value is replaced
    only when it currently equals if_value (parsePropertiesFile's rule: Wings' json/yaml check is
    inverted by a bug and its ini parser ignores if_value); "regex:..." substitutes inside it."""
    if rule.if_value is None:
        return rule.text
    if current is None or not rule.if_value.startswith("regex:"):
        return rule.text if current == rule.if_value else None
    try:  # RE2, as Go's regexp in Wings: file contents are untrusted and must not backtrack
        pattern = compile_pattern(rule.if_value[len("regex:") :])
    except BadPattern as e:  # Wings logs a warning and skips the replacement
        warn.append(f"{rule.match}: if_value regex is unusable ({e}); replacement skipped")
        return None
    # Go's ReplaceAllString template ($1, ${1}, ${name}) respelled for the Python-style sub.
    template = re.sub(r"\$(\d+)|\$\{(\w+)\}", lambda t: rf"\g<{t[1] or t[2]}>", rule.text.replace("\\", "\\\\"))
    try:
        return pattern.sub(template, current) if pattern.search(current) else None
    except (re.error, IndexError, KeyError) as e:  # a group the template names does not exist
        warn.append(f"{rule.match}: if_value replacement is unusable ({e}); replacement skipped")
        return None
