"""The append-only event store: the database and its schema, the writer that commits appends in
groups, the per-stream hash chain, and the lenient reader that auditors use.

May import: `engine.events`. Nothing above it (servers, power, audit) is known here.
"""
