"""The auditor's side of the log: verification of the hash chains and of what the events say
(`verify`; `verify_everything` runs the checks against the signed checkpoints, which live in
engine.checkpoints with their proofs, in the same pass; `report` holds what it found), timelines,
plain-words descriptions and streaming export; in a fleet's shared database, which node wrote
what (`nodes`) and the fleet's summary with each node's streams verified (`fleet`).

Everything here reads the database directly, so it works the same from the daemon's API and from
the CLI on a copy of the database file. May import: `engine.store`, `engine.servers`,
`engine.events`, `engine.statechart`, `engine.charts.log` (the log's timeline of charts),
`engine.checkpoints`; nothing in the engine imports this package.
"""
