"""Servers as the log makes them: definitions (the document a Panel serves), the fold of a
stream's events into a `ServerView`, the live registry that keeps every view current, and
point-in-time replay with its snapshots (caches of the log, never a second truth).

May import: `engine.store`, `engine.events`, `engine.event_types`, `engine.panel_events`,
`engine.statechart`, `engine.signals`, `engine.config_docker` (the node's own addresses) (checked:
pyproject's [tool.importlinter]).
"""
