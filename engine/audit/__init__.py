"""The auditor's side of the log: filtered reading, point-in-time replay (with snapshots that are a
cache of the log, never a second truth), verification of the hash chains and of what the events
say, timelines, plain-words descriptions and streaming export.

Everything here reads the database directly, so it works the same from the daemon's API and from
the CLI on a copy of the database file.
"""
