"""The formats a diagram comes in, what each one is on the wire, and which diagram offers which."""

from __future__ import annotations

MERMAID, DOT, SVG, PNG, SCXML, MARKDOWN = "mermaid", "dot", "svg", "png", "scxml", "markdown"

STATECHART_FORMATS = (MERMAID, DOT, SVG, PNG, SCXML, MARKDOWN)
HISTORY_FORMATS = (MERMAID, DOT, SVG, PNG)
TIMELINE_FORMATS = (MERMAID, SVG, PNG)
DEFAULT_FORMAT = MERMAID  # plain text that pastes into a ticket, a runbook or a review

# Registered types where there is one (text/vnd.graphviz, image/svg+xml, application/scxml+xml
# from the SCXML recommendation, text/markdown from RFC 7763); Mermaid has none registered, and
# text/vnd.mermaid is the one its own integration guide recommends.
MEDIA_TYPES = {
    MERMAID: "text/vnd.mermaid; charset=utf-8",
    DOT: "text/vnd.graphviz; charset=utf-8",
    SVG: "image/svg+xml",
    PNG: "image/png",
    SCXML: "application/scxml+xml",
    MARKDOWN: "text/markdown; charset=utf-8",
}

SUFFIXES = {MERMAID: "mmd", DOT: "dot", SVG: "svg", PNG: "png", SCXML: "scxml", MARKDOWN: "md"}

BINARY = {PNG}


class BadDiagramRequest(ValueError):
    """A diagram that cannot be made as asked (unknown format, empty window, too much to draw);
    the message says why and what would work."""


def checked_format(fmt: str | None, allowed: tuple[str, ...], what: str) -> str:
    """`fmt` if this kind of diagram offers it (the default when absent); BadDiagramRequest if not."""
    if fmt is None or fmt == "":
        return DEFAULT_FORMAT
    if fmt not in allowed:
        raise BadDiagramRequest(f"format {fmt!r} is not one of {', '.join(allowed)} (for {what})")
    return fmt
