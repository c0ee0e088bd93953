"""Power operations: start, stop, restart and kill under a per-server lock, each with exactly one
recorded outcome; the processes the engine runs, their exits and which console buffer is whose
(the console itself is `engine.console`); boot recovery.

May import: `engine.store`, `engine.servers`, `engine.environments.base`, `engine.preboot`,
`engine.events`, `engine.event_types`, `engine.statechart`, `engine.console`, `engine.config` (the
crash policy's defaults) (checked: pyproject's [tool.importlinter]).
"""
