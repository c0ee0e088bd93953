"""Pre-boot step 5: rewrite a server's configuration files before it boots, as Wings does
(pterodactyl/wings parser/parser.go, parser/helpers.go, server/config_parser.go). The Panel expands
{{server.*}} and {{env.*}} before Wings sees the list (panel EggConfigurationService.php); a
standalone wingman has no Panel in front of it, so that happens here too, with the Panel's names.
Where Wings is known to go wrong we do better, and the comment at the spot says so."""

from __future__ import annotations

import errno
import json
import pathlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from wingman.engine.preboot.folderfiles import FolderFileError, locate, read_text, write_text
from wingman.engine.servers.patterns import BadPattern, compile_pattern

_MISSING = object()
_Doc = dict[str, Any]  # a JSON object: the definition's settings, an entry, the daemon's config


@dataclass
class ConfigFileResult:
    file: str
    ok: bool
    error: str | None = None  # human sentence, e.g. "server.properties: line 3: ..."
    changed: bool = False
    # Not failures, but worth an operator's eye: unknown placeholders, unusable if_value regexes.
    warnings: list[str] = field(default_factory=list)


class ConfigFileError(FolderFileError):
    """A problem with one file; the message follows the file name in the result's sentence."""


# Only server./env./config. keys are expanded (as the Panel does); other {{...}} are the game's.
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


def _text(value: Any) -> str:
    """A value as it is written into a text file (JSON spelling for bools and floats)."""
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (bool, float, dict, list)) else str(value)


def _get(node: Any, tokens: list[str]) -> Any:
    for t in tokens:
        if isinstance(node, list) and t.isdigit() and int(t) < len(node):
            node = node[int(t)]
        else:
            node = node.get(t, _MISSING) if isinstance(node, dict) else _MISSING
    return node


def _expander(settings: _Doc, env: dict[str, str], config: _Doc, warn: list[str]) -> Callable[[str], str]:
    def server(path: str) -> Any:
        for old, new in _LEGACY_SERVER.items():
            if path == old or path.startswith(old + "."):
                if (v := _get(settings, (new + path[len(old) :]).split("."))) is not _MISSING:
                    return v
        return _get(settings, path.split("."))

    def lookup(key: str) -> Any:
        scope, _, path = re.sub(r"^server\.build\.env\.", "env.", key).partition(".")
        if scope == "server":
            return server(path)
        if scope == "env":
            legacy = server(_LEGACY_ENV[path]) if path in _LEGACY_ENV else _MISSING
            return env.get(path, _MISSING) if legacy is _MISSING else legacy
        if _SECRET.search(path):
            warn.append(f"{{{{{key}}}}} is not exposed to server files; wrote ''")
            return None
        # parser.go templatableConfig: docker.interface is docker.network.interface
        alias = _get(config, ["docker", "network", "interface"]) if path == "docker.interface" else _MISSING
        return _get(config, path.split(".")) if alias is _MISSING else alias

    def one(m: re.Match[str]) -> str:
        if (value := lookup(m.group(1))) is _MISSING:  # the Panel's Arr::get(..., '') default
            warn.append(f"unknown placeholder {{{{{m.group(1)}}}}} replaced with ''")
            return ""
        return _text(value)

    return lambda s: _PLACEHOLDER.sub(one, s)


@dataclass
class _Rule:
    match: str
    raw: Any  # replace_with, placeholders expanded; its type matters for json and yaml
    text: str
    if_value: str | None


def _rules(entry: _Doc, expand: Callable[[str], str]) -> list[_Rule]:
    if not isinstance(replace := entry.get("replace") or [], list):
        raise ConfigFileError("'replace' must be a list")
    rules = []
    for n, r in enumerate(replace, 1):
        if not isinstance(r, dict) or not isinstance(r.get("match"), str) or not r["match"]:
            raise ConfigFileError(f"replacement {n} needs a non-empty string 'match'")
        # parser.go: eggs that were never upgraded still say "value" instead of "replace_with".
        raw = r["replace_with"] if "replace_with" in r else r.get("value", _MISSING)
        if raw is _MISSING or isinstance(raw, (dict, list)):
            raise ConfigFileError(f"replacement {n} ({r['match']}) needs a scalar 'replace_with'")
        raw, iv = expand(raw) if isinstance(raw, str) else raw, r.get("if_value")
        rules.append(_Rule(r["match"], raw, _text(raw), None if iv in (None, "") else _text(iv)))
    return rules


def _typed(raw: Any) -> Any:
    """helpers.go getKeyValue: booleans stay booleans and whatever strconv.Atoi accepts becomes an
    int, so "{{server.build.default.port}}" lands in JSON/YAML as 25565. Wings also turns floats
    into strings and null into "<nil>"; we keep those as given."""
    if raw is None or isinstance(raw, (bool, float)):
        return raw
    text = str(raw)
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) and -(2**63) <= int(text) < 2**63 else text


def _conditional(current: str | None, rule: _Rule, warn: list[str]) -> str | None:
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


def _lines(text: str) -> list[str]:
    # Not str.splitlines: that also splits on \f and \v, which are plain characters in these files.
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _body(line: str) -> tuple[str, str]:
    body = line.rstrip("\r\n")
    return body, line[len(body) :]


_CONTINUED = re.compile(r"(?<!\\)(?:\\\\)*\\\Z")  # an odd number of trailing backslashes


def _unescape(s: str, lineno: int) -> str:
    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c.startswith("u"):
            if not re.fullmatch(r"u[0-9a-fA-F]{4}", c):
                raise ConfigFileError(f"line {lineno}: malformed \\uXXXX escape")
            return chr(int(c[1:], 16))
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(c, c)

    text = re.sub(r"\\(u.{0,4}|.|$)", one, s, flags=re.S)
    try:  # join escaped UTF-16 surrogate pairs (\ud83d\ude00) into one character
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return text


def _escape(s: str, key: bool = False) -> str:
    """Non-ASCII is written as \\uXXXX on purpose, as Wings does (pterodactyl/panel#2308)."""

    def one(i: int, c: str) -> str:
        if c in "\\\t\n\r\f" or (c == " " and (key or i == 0)) or (key and c in "=:#!"):
            return "\\" + {"\t": "t", "\n": "n", "\r": "r", "\f": "f"}.get(c, c)
        if " " <= c <= "~":
            return c
        b = c.encode("utf-16-be", "surrogatepass")
        return "".join(f"\\u{b[j] << 8 | b[j + 1]:04x}" for j in range(0, len(b), 2))

    return "".join(one(i, c) for i, c in enumerate(s))


def _prop_entries(lines: list[str]) -> Iterator[tuple[int, int, str, str, str | None]]:
    """Yield (first line, end line, key, value, the first line's text before the value or None)."""
    i = 0
    while i < len(lines):
        start, (body, _) = i, _body(lines[i])
        lead = logical = body.lstrip(" \t\f")
        i += 1
        if not lead or lead[0] in "#!":
            continue
        while _CONTINUED.search(logical):  # a continued logical line
            logical = logical[:-1] + (_body(lines[i])[0].lstrip(" \t\f") if i < len(lines) else "")
            i += 1
        # key: up to an unescaped separator; then blanks, at most one of = or :, blanks
        m = re.match(r"((?:\\.|[^=:\\ \t\f])*)([ \t\f]*[=:]?[ \t\f]*)", logical, re.S)
        assert m is not None  # every part of it may be empty: it matches any text
        j, first = m.end(), len(lead) - bool(_CONTINUED.search(lead))
        prefix = body[: len(body) - len(lead) + j] if m.group(2) and j <= first else None
        yield start, min(i, len(lines)), _unescape(m.group(1), start + 1), _unescape(logical[j:], start + 1), prefix


def _properties(text: str, rules: list[_Rule], warn: list[str]) -> str:
    """Edits lines in place, so comments, order and untouched escapes survive. (Wings rebuilds the
    file from the parsed keys and loses every comment below the header.)"""
    eol = "\r\n" if "\r\n" in text else "\n"
    for rule in rules:
        lines = _lines(text)
        hits = [e for e in _prop_entries(lines) if e[2] == rule.match]
        if not hits and rule.if_value is None:  # a missing key is appended, as p.Set does
            text += (
                eol if text and not text.endswith("\n") else ""
            ) + f"{_escape(rule.match, True)}={_escape(rule.text)}{eol}"
        for start, end, _, current, prefix in reversed(hits):  # every duplicate, so none disagrees
            new = _conditional(current, rule, warn)
            if new is not None and new != current:
                head = prefix if prefix is not None else _escape(rule.match, True) + "="
                lines[start:end] = [head + _escape(new) + _body(lines[end - 1])[1]]
        text = "".join(lines) if hits else text
    return text


_INI_SECTION = re.compile(r"\s*\[([^\]]*)\]")
_INI_KEY = re.compile(r"([ \t]*)([^=:;#\s\[][^=:]*?)([ \t]*[=:][ \t]*)(.*)")


def _ini_path(match: str) -> tuple[str, str]:
    """parseIniFile: the first dot outside [brackets] splits section from key (the brackets are
    dropped); later dots belong to the key. No dot: the key lives before any section header."""
    m = re.fullmatch(r"((?:\[[^\]]*\]|[^.\[\]])*)\.(.*)", match, re.S)
    section, key = (re.sub(r"[\[\]]", "", p) for p in (m.groups() if m else ("", match)))
    return ("" if section == "DEFAULT" else section), key  # go-ini's default section is DEFAULT


def _ini(text: str, rules: list[_Rule], warn: list[str]) -> str:
    """Line edits too: go-ini rewrites the whole file. Values are compared as go-ini reads them
    (quotes and inline comments removed) and written as given."""

    def value(raw: str) -> str:
        raw = raw.strip()
        quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in '"`'
        return raw[1:-1] if quoted else re.sub(r"\s+[;#].*$", "", raw)

    eol = "\r\n" if "\r\n" in text else "\n"
    for rule in rules:
        section, key = _ini_path(rule.match)
        lines, current, seen, last, hits = _lines(text), "", section == "", None, []
        for n, line in enumerate(lines):
            if m := _INI_SECTION.match(line):
                current = "" if m.group(1).strip() == "DEFAULT" else m.group(1).strip()
                seen, last = seen or current == section, n if current == section else last
            elif current == section and line.strip() and line.strip()[0] not in ";#":
                last = n
                if (kv := _INI_KEY.fullmatch(_body(line)[0])) and kv.group(2).strip() == key:
                    hits.append((n, kv))
        for n, kv in hits:
            new = _conditional(value(kv.group(4)), rule, warn)
            if new is not None and new != value(kv.group(4)):
                lines[n] = "".join(kv.group(1, 2, 3)) + new + _body(lines[n])[1]
        if not hits and rule.if_value is None:  # go-ini NewKey/NewSection: `key = value`
            if not seen:
                sep = (eol if lines and not lines[-1].endswith("\n") else "") + (eol if text.strip() else "")
                lines.append(f"{sep}[{section}]{eol}")
                last = len(lines) - 1
            at = 0 if last is None else last + 1
            if at and not lines[at - 1].endswith("\n"):
                lines[at - 1] += eol
            lines.insert(at, f"{key} = {rule.text}{eol}")
        text = "".join(lines)
    return text


def _tokens(path: str) -> list[str]:
    # gabs: `~1` is a literal dot, `~0` a tilde; helpers.go's `name[N]` is the same as `name.N`.
    return [p.replace("~1", ".").replace("~0", "~") for p in re.sub(r"\[(\d+)\]", r".\1", path).split(".")]


def _set(node: Any, tokens: list[str], value: Any, path: str) -> None:
    for i, t in enumerate(tokens):
        if isinstance(node, list) and not (t.isdigit() and int(t) < len(node)):
            raise ConfigFileError(f"cannot set {path}: {t!r} is not an index of its {len(node)}-item list")
        if not isinstance(node, (dict, list)):  # gabs' ErrPathCollision fails the file in Wings too
            raise ConfigFileError(f"cannot set {path}: {tokens[i - 1]!r} is a {type(node).__name__}, not an object")
        k: Any = int(t) if isinstance(node, list) else t  # an index into a list, a key of an object
        if i == len(tokens) - 1:
            node[k] = value
        elif (node[k] if isinstance(node, list) else node.get(k)) is None:
            node[k] = {}  # gabs creates missing (and null) intermediate objects
        node = node[k]


def _assign(node: Any, path: str, rule: _Rule, warn: list[str]) -> None:
    tokens = _tokens(path)
    if rule.if_value is None:
        return _set(node, tokens, _typed(rule.raw), path)
    current = _get(node, tokens)
    if current is not _MISSING and (new := _conditional(_text(current), rule, warn)) is not None:
        # a regex substitution stays a string, as in setValueAtPath(r.ReplaceAllString(...))
        _set(node, tokens, new if rule.if_value.startswith("regex:") else _typed(rule.raw), path)


def _structured(text: str, data: Any, rules: list[_Rule], warn: list[str], dump: Callable[[Any], str]) -> str:
    before = repr(data)  # repr, not ==: True == 1 and 1 == 1.0 would hide a change
    for rule in rules:
        if ".*" not in rule.match:
            _assign(data, rule.match, rule, warn)
            continue
        # IterateOverJson: split at the first ".*", set the rest on every child (so nested
        # wildcards are not supported). Children that are not objects are skipped; Wings fails.
        head, rest = (p.strip(".") for p in rule.match.split(".*", 1))
        parent = _get(data, _tokens(head)) if head else data
        children = parent.values() if isinstance(parent, dict) else parent if isinstance(parent, list) else []
        for child in list(children):
            if rest and isinstance(child, dict):
                _assign(child, rest, rule, warn)
    return dump(data) if repr(data) != before or not text.strip() else text  # unchanged: same bytes


def _json(text: str, rules: list[_Rule], warn: list[str]) -> str:
    try:  # an empty file starts as {}: Wings fails on the empty file it has just created
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise ConfigFileError(f"line {e.lineno}: {e.msg}") from None
    return _structured(text, data, rules, warn, lambda d: json.dumps(d, indent=4, ensure_ascii=False) + "\n")


def _yaml(text: str, rules: list[_Rule], warn: list[str]) -> str:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigFileError(f"line {mark.line + 1}: {e.problem}" if mark else str(e)) from None
    if not isinstance(data := {} if data is None else data, dict):  # yaml.Unmarshal into a map
        raise ConfigFileError("the YAML document is not a mapping")
    # A rewrite loses comments, as in Wings; key order is kept (Wings sorts the keys).
    return _structured(text, data, rules, warn, lambda d: yaml.safe_dump(d, sort_keys=False, allow_unicode=True))


def _file(text: str, rules: list[_Rule], warn: list[str]) -> str:
    # parseTextFile: a line starting with `match` becomes replace_with; if_value is ignored. Wings
    # writes every matching rule (concatenated) and turns CRLF into LF; we take the first matching
    # rule and keep each line's ending.
    out = []
    for line in _lines(text):
        body, end = _body(line)
        out.append(next((r.text + end for r in rules if body.startswith(r.match)), line))
    return "".join(out)


_PARSERS = {"properties": _properties, "ini": _ini, "file": _file, "json": _json, "yaml": _yaml, "yml": _yaml}


def _apply_one(folder: pathlib.Path, entry: object, expand: Callable[[str], str], warn: list[str]) -> bool:
    if not isinstance(entry, dict):
        raise ConfigFileError("the entry is not a mapping")
    name = entry.get("parser")
    if (parser := _PARSERS.get(name) if name is not None else None) is None:  # Wings ignores it (after creating it)
        raise ConfigFileError(f"parser {name!r} is not supported; use one of {', '.join(_PARSERS)}")
    rules = _rules(entry, expand)
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
    settings: _Doc,
    environment: dict[str, str],
    daemon_config: _Doc | None = None,
) -> list[ConfigFileResult]:
    """Apply each entry of process_configuration.configs, in order; one result per entry.
    A failing file is reported and never stops the others (Wings logs it and boots anyway)."""
    results = []
    for n, entry in enumerate(configs or [], 1):
        name = entry.get("file") if isinstance(entry, dict) else None
        result = ConfigFileResult(file=name if isinstance(name, str) and name else f"configs[{n}]", ok=True)
        try:
            expand = _expander(settings or {}, environment or {}, daemon_config or {}, result.warnings)
            result.changed = _apply_one(pathlib.Path(folder), entry, expand, result.warnings)
        except FolderFileError as e:
            result.ok, result.error = False, f"{result.file}: {e}"
        except OSError as e:
            reason = "a symlink appeared in the path; refused" if e.errno == errno.ELOOP else e.strerror or str(e)
            result.ok, result.error = False, f"{result.file}: {reason}"
        except Exception as e:  # a bug on one file must not cost the others their update
            result.ok, result.error = False, f"{result.file}: {type(e).__name__}: {e}"
        results.append(result)
    return results
