"""The statechart in force, as the log records it (docs/statechart.md).

The daemon runs the chart its config names (`system.statechart`, the packaged one by default).
Each chart it adopts is recorded on the node's own stream (`events`: its hash, its whole text, the
previous hash, who decided), so that the log holds the timeline of charts by position (`log`):
every transition is checked against the chart in force when it was recorded, and an auditor can
read back the exact chart any event was recorded under. At boot (`adoption`), a chart that
differs from the last one recorded is replayed against this node's history (engine.audit.what_if)
and refused when it would leave a live server in a state it lacks, unless the operator accepts it
(`wingman serve --accept-chart-change`); such servers are then re-placed into the new chart by an
event on their stream.

May import: `engine.store`, `engine.events`, `engine.event_types`, `engine.statechart`,
`engine.panel_events` (the node's stream), `engine.audit.what_if` (`adoption` only); `log` and
`events` import nothing of the audit, so that the audit and the fold may read the timeline.
"""
