"""The tables as SQLAlchemy Core sees them: the event log, the replay snapshots that cache it, the
signed checkpoints over the log, and (in a fleet's shared database) which node each stream belongs to.
Alembic's migrations create them (and autogenerate compares against this metadata); this only maps them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Alembic needs stable constraint names to ALTER on SQLite (batch mode).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Position = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("stream_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # The node that wrote the event (config `node_id`; docs/fleet.md). NULL on the events written
    # before migration 0007, which no one can attribute for sure. Not in the event's hash: the
    # hashes of the log written before stay valid, and a node's own checkpoints bind its events.
    Column("node_id", String(128), nullable=True),
    UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
)

# The columns an event is made of (engine.events.RecordedEvent), in the order the store reads them:
# the table's own columns but the node.
EVENT_COLUMNS = tuple(c for c in events.c if c.name != "node_id")


# Replay snapshots (engine.servers.snapshot_cache): a server's folded state every N events, a cache of
# the log that is checked against it before use and can be dropped at any time.
snapshots = Table(
    "snapshots",
    metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("position", Position, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("event_hash", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("state", JSON, nullable=False),
    Column("state_hash", String(64), nullable=False),
)


# Signed checkpoints (engine.checkpoints.format): the daemon's signature over the Merkle root
# of the first `size` events. `body` is the signed JSON exactly as signed. `frontier` (the tree's
# compact range at `size`) lets the daemon resume the tree at boot without folding the whole log;
# `leaves` (the event hashes, 32 bytes each, from the previous checkpoint's size to this one's)
# lets verification name the first event that no longer matches. Neither is trusted: each is
# used only once it reproduces a signed root.
checkpoints = Table(
    "checkpoints",
    metadata,
    # A node's own log (migration 0008): its checkpoints are numbered by seq apart from other nodes'.
    Column("node_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("size", Position, nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("signature", String(128), nullable=False),
    Column("frontier", JSON, nullable=False),
    Column("leaves", LargeBinary, nullable=False),
    # The position of the last event it covers: the daemon's resume point, never trusted by verify.
    Column("upto_position", Position, nullable=True),
)


# Outbox cursors (engine.remote.activity_cursor): for each outbox that sends a projection of the
# log somewhere else (the Panel's activity log), the position up to which the other side has
# accepted everything. Only ever moves forward; the entries themselves are read from the log.
outbox_cursors = Table(
    "outbox_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", Position, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# Which node a stream (a server) belongs to, in a database that several nodes write
# (engine.store.ownership, docs/fleet.md): claimed by the node's first write to the stream, and
# only ever changed by a handover. Another node's write to the stream is refused.
stream_owners = Table(
    "stream_owners",
    metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("node_id", String(128), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)


# Witness cosignatures on each node's checkpoints (engine.checkpoints.cosigned, migration 0009):
# one per node, witness (its key name) and tree size, with the root it vouches for and the
# signature line as the witness sent it. A witness's latest cosigned size for a node is its largest.
cosignatures = Table(
    "cosignatures",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("witness", String(255), primary_key=True),
    Column("size", Position, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("line", Text, nullable=False),
)
