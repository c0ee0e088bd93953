"""The exports kept beside the statechart YAML (`power.mmd`, `power.svg`, `power.scxml` next to
`power.yaml`): which of them no longer match the YAML, and rewriting those.

Mermaid and SCXML are compared byte for byte. An SVG is compared in its normalized form
(render.svg_content: every title, text and colour, no coordinates), because its coordinates
depend on the fonts of the machine that drew it; refresh rewrites only the files that differ, so
drawing on another machine does not churn the committed SVG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import ParseError

import yaml

from wingman.engine.diagrams.formats import MERMAID, SCXML, SUFFIXES, SVG, BadDiagramRequest
from wingman.engine.diagrams.render import svg_content
from wingman.engine.diagrams.statechart import export
from wingman.engine.statechart import STATECHART_PATH, Statechart, parse_statechart

EXPORTED_FORMATS = (MERMAID, SVG, SCXML)
DEFAULT_CHART = STATECHART_PATH  # the statechart the runtime loads


@dataclass(frozen=True)
class StaleExport:
    path: Path
    reason: str  # "missing" or "differs from the YAML"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def read_chart(path: Path) -> Statechart:
    """A statechart file parsed; BadDiagramRequest saying why when it is missing or malformed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadDiagramRequest(f"cannot read the statechart {path}: {exc.strerror or exc}") from None
    try:
        return parse_statechart(text)
    except (yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise BadDiagramRequest(f"{path} is not a valid statechart: {what}") from None


def export_paths(chart_path: Path) -> dict[str, Path]:
    """Where each committed export of this YAML lives: beside it, named after it."""
    chart_path = Path(chart_path)
    return {fmt: chart_path.with_suffix("." + SUFFIXES[fmt]) for fmt in EXPORTED_FORMATS}


def _same(fmt: str, committed: bytes, fresh: bytes) -> bool:
    if fmt != SVG:
        return committed == fresh
    try:
        return svg_content(committed) == svg_content(fresh)
    except ParseError:  # a committed SVG that is not even XML is stale
        return False


def stale_exports(chart_path: Path = DEFAULT_CHART) -> list[StaleExport]:
    """The exports of `chart_path` that are missing or say something else than the YAML now does."""
    chart = read_chart(chart_path)
    stale = []
    for fmt, path in export_paths(chart_path).items():
        if not path.is_file():
            stale.append(StaleExport(path, "missing"))
        elif not _same(fmt, path.read_bytes(), export(chart, fmt)):
            stale.append(StaleExport(path, "differs from the YAML"))
    return stale


def refresh(chart_path: Path = DEFAULT_CHART) -> list[Path]:
    """Rewrite the stale exports of `chart_path`; returns the files written (none when all match)."""
    chart = read_chart(chart_path)
    written = []
    for fmt, path in export_paths(chart_path).items():
        fresh = export(chart, fmt)
        if path.is_file() and _same(fmt, path.read_bytes(), fresh):
            continue
        path.write_bytes(fresh)
        written.append(path)
    return written
