"""Outbox cursors: how far in the log another party (the Panel's activity log) has accepted what
the daemon sends it (engine.remote.activity_cursor).

A table rather than events: the cursor is delivery bookkeeping, not a fact about a server, and as
events it would add one to the hash-chained log for every batch the Panel takes, forever. It holds
a position in the log and nothing else, so it cannot disagree with the log about what happened;
it can only say how much of it has been delivered.

Revision ID: 0006_outbox_cursors
Revises: 0005_stream_pages_by_version
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_outbox_cursors"
down_revision = "0005_stream_pages_by_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_cursors",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_outbox_cursors"),
    )


def downgrade() -> None:
    op.drop_table("outbox_cursors")
