"""The auditor's side of the log: verification of the hash chains and of what the events say,
verification against the signed checkpoints (`checkpoint_chain`: which checkpoints to believe;
`checkpoints`: the log against them), inclusion and consistency proofs (`proofs`), timelines,
plain-words descriptions and streaming export.

Everything here reads the database directly, so it works the same from the daemon's API and from
the CLI on a copy of the database file. May import: `engine.store`, `engine.servers`,
`engine.events`, `engine.statechart`; nothing in the engine imports this package.
"""
