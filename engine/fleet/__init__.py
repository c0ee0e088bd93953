"""Several nodes on one database (docs/fleet.md): the lock that keeps one daemon per node id."""
