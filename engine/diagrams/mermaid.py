"""Mermaid syntax shared by the diagrams: identifiers and text that Mermaid parses as meant.

Mermaid replaces entity codes (`#59;`, `#quot;`) before it parses a diagram, so they are the one
escape that works in every diagram type: a raw `;` ends a statement, a raw `"` a quoted label, and
in a state diagram a raw `:` ends a description.
"""

from __future__ import annotations

import hashlib
import re

# Words some Mermaid grammar reserves: a state named `end` would close a flowchart block.
_RESERVED = {
    "end",
    "graph",
    "flowchart",
    "subgraph",
    "state",
    "note",
    "class",
    "classdef",
    "style",
    "linkstyle",
    "click",
    "default",
    "direction",
    "participant",
    "actor",
    "loop",
    "alt",
    "else",
    "opt",
    "par",
    "and",
    "rect",
    "critical",
    "break",
    "title",
    "box",
    "activate",
    "deactivate",
    "autonumber",
    "create",
    "destroy",
}
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ENTITIES = str.maketrans(
    {"#": "#35;", ";": "#59;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "\n": " ", "\r": " "}
)
_COLON = str.maketrans({":": "#58;"})


def ident(name: str) -> str:
    """A Mermaid identifier for a state: the name itself when it is a plain word no grammar
    reserves, else a spelling that is (with a short digest, so two odd names never collide)."""
    if _PLAIN.fullmatch(name) and name.lower() not in _RESERVED:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return f"s_{re.sub(r'[^A-Za-z0-9_]', '_', name)}_{digest}"


def text(value: str, colon: bool = False) -> str:
    """Text on one line with every character Mermaid would read as syntax written as an entity.
    `colon`: escape `:` too, where it ends the text (state descriptions and transition labels of a
    state diagram); sequence messages and quoted flowchart labels keep it readable."""
    out = " ".join(str(value).translate(_ENTITIES).split())
    return out.translate(_COLON) if colon else out
