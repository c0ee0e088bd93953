"""Replay snapshots (a cache of the log, never a second truth) and an index for per-server paging.

`snapshots` holds a server's folded state every N events of its stream, keyed by the hash of the
event it was folded up to and by a digest of its own content: a snapshot whose event no longer
has that hash, whose content was edited, or that was made by another version of the fold is
ignored and rebuilt from the log. Dropping the table loses
nothing but speed.

Revision ID: 0002_snapshots
Revises: 0001_events
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_snapshots"
down_revision = "0001_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_hash", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "version", name="pk_snapshots"),
    )
    op.create_index("ix_snapshots_stream_id_position", "snapshots", ["stream_id", "position"])
    op.create_index("ix_snapshots_stream_id_recorded_at", "snapshots", ["stream_id", "recorded_at"])
    # Paging one server's events by position (the audit's `after`) without scanning the log.
    op.create_index("ix_events_stream_id_position", "events", ["stream_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_events_stream_id_position", table_name="events")
    op.drop_index("ix_snapshots_stream_id_recorded_at", table_name="snapshots")
    op.drop_index("ix_snapshots_stream_id_position", table_name="snapshots")
    op.drop_table("snapshots")
