"""The append-only event store: appends committed in groups, with expected versions and
subscribers (`event_store`), the per-stream hash chain (`hashing`), the schema and the database
with its migrations (`schema`, `database`), queries of the log (`queries`) with the lenient
decoding of its rows that auditors rely on (`lenient_rows`), and points of the log (`points`).
What differs between SQLite and PostgreSQL is in `backends/`: one module per database, behind one
protocol, chosen from the database URL.

May import: `engine.events`. Nothing above it (servers, power, checkpoints, audit) is known here:
the signed checkpoints (engine.checkpoints) follow the log as one more subscriber of its commits.
"""
