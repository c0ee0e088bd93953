"""Several nodes on one database (docs/fleet.md): the lock that keeps one daemon per node id
(`node_lock`). Which node a server belongs to is the store's (engine.store.ownership): it is
checked in the write's own transaction.

May import: `engine.store` (its database set-up). The daemon takes the lock at start; the
`serve` command looks before it starts anything.
"""
