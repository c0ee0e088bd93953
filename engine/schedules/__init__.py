"""Scheduled power actions (issue 31): a cron expression in a time zone, an action or a chain of
steps, conditions, a missed-run policy and `skip_next`, taken from a server's definition
(`schedules:`) or added by the API. Every change, firing, skip and outcome is an event on the
server's stream; a firing runs ordinary power operations (actor `system:schedule`).

May import: `engine.store`, `engine.servers`, `engine.events`, `engine.event_types`,
`engine.statechart`, `engine.power` (its public request) (checked: pyproject's [tool.importlinter]).
`model` imports nothing of the engine but the console-line check: engine.servers.definition
validates a definition's `schedules:` with it.
"""
