"""State diagrams, always derived from the statechart file the runtime enforces, so a diagram
cannot drift from the behaviour.

- `formats`: the diagram formats, their media types and file suffixes, and the error for a
  diagram that cannot be made (bad format, bad window).
- `mermaid`: Mermaid syntax (identifiers and label text that Mermaid accepts).
- `render`: Graphviz through pygraphviz: DOT text, SVG and PNG, and the normalized SVG form the
  staleness check compares.
- `statechart`: the statechart exported as Mermaid, DOT, SVG, PNG, SCXML and Markdown.
- `exported`: the exports committed beside the YAML in statecharts/: which are stale, and refresh.
- `window`: what one server went through in a time window, read from its events.
- `history`: the statechart with the transitions a server took drawn heavier and counted.
- `timeline`: a server's states over time, each change with its cause and actor.

May import: `engine.statechart` (the chart as data: `Statechart`, `Transition`, its loaders and
`STATECHART_PATH`), `engine.store`, `engine.audit`. Nothing in the engine
imports this package; `api/` calls it.
"""
