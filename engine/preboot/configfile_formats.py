"""The file formats a configuration file rewrite knows (engine.preboot.configfiles), as Wings'
parsers know them: properties, ini, plain file (line by line), json and yaml. Each takes the file's
text and the rules, and gives the new text; a format's quirks are at its spot."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from wingman.engine.preboot.configfile_rules import (
    MISSING,
    ConfigFileError,
    Rule,
    conditional,
    text_of,
    typed,
    value_at,
)


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


def _properties(text: str, rules: list[Rule], warn: list[str]) -> str:
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
            new = conditional(current, rule, warn)
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


def _ini(text: str, rules: list[Rule], warn: list[str]) -> str:
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
            new = conditional(value(kv.group(4)), rule, warn)
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


def _assign(node: Any, path: str, rule: Rule, warn: list[str]) -> None:
    tokens = _tokens(path)
    if rule.if_value is None:
        return _set(node, tokens, typed(rule.raw), path)
    current = value_at(node, tokens)
    if current is not MISSING and (new := conditional(text_of(current), rule, warn)) is not None:
        # a regex substitution stays a string, as in setValueAtPath(r.ReplaceAllString(...))
        _set(node, tokens, new if rule.if_value.startswith("regex:") else typed(rule.raw), path)


def _structured(text: str, data: Any, rules: list[Rule], warn: list[str], dump: Callable[[Any], str]) -> str:
    before = repr(data)  # repr, not ==: True == 1 and 1 == 1.0 would hide a change
    for rule in rules:
        if ".*" not in rule.match:
            _assign(data, rule.match, rule, warn)
            continue
        # IterateOverJson: split at the first ".*", set the rest on every child (so nested
        # wildcards are not supported). Children that are not objects are skipped; Wings fails.
        head, rest = (p.strip(".") for p in rule.match.split(".*", 1))
        parent = value_at(data, _tokens(head)) if head else data
        children = parent.values() if isinstance(parent, dict) else parent if isinstance(parent, list) else []
        for child in list(children):
            if rest and isinstance(child, dict):
                _assign(child, rest, rule, warn)
    return dump(data) if repr(data) != before or not text.strip() else text  # unchanged: same bytes


def _json(text: str, rules: list[Rule], warn: list[str]) -> str:
    try:  # an empty file starts as {}: Wings fails on the empty file it has just created
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise ConfigFileError(f"line {e.lineno}: {e.msg}") from None
    return _structured(text, data, rules, warn, lambda d: json.dumps(d, indent=4, ensure_ascii=False) + "\n")


def _yaml(text: str, rules: list[Rule], warn: list[str]) -> str:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigFileError(f"line {mark.line + 1}: {e.problem}" if mark else str(e)) from None
    if not isinstance(data := {} if data is None else data, dict):  # yaml.Unmarshal into a map
        raise ConfigFileError("the YAML document is not a mapping")
    # A rewrite loses comments, as in Wings; key order is kept (Wings sorts the keys).
    return _structured(text, data, rules, warn, lambda d: yaml.safe_dump(d, sort_keys=False, allow_unicode=True))


def _file(text: str, rules: list[Rule], warn: list[str]) -> str:
    # parseTextFile: a line starting with `match` becomes replace_with; if_value is ignored. Wings
    # writes every matching rule (concatenated) and turns CRLF into LF; we take the first matching
    # rule and keep each line's ending.
    out = []
    for line in _lines(text):
        body, end = _body(line)
        out.append(next((r.text + end for r in rules if body.startswith(r.match)), line))
    return "".join(out)


PARSERS = {"properties": _properties, "ini": _ini, "file": _file, "json": _json, "yaml": _yaml, "yml": _yaml}
