"""Witness cosignatures (issue 32, docs/checkpoints.md "Witnesses"): the cosignatures each node's
checkpoints received from the witnesses of `audit.witnesses` (c2sp.org/tlog-witness), keyed by
node, witness (its key name) and tree size, with the root it vouches for, the witness's
timestamp, and the signature line as it was sent (so a note can carry it again).

A new table only: nothing to move, and any database from before it simply has no cosignatures.

Revision ID: 0009_cosignatures
Revises: 0008_checkpoints_per_node
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_cosignatures"
down_revision = "0008_checkpoints_per_node"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cosignatures",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("witness", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "witness", "size", name="pk_cosignatures"),
    )


def downgrade() -> None:
    op.drop_table("cosignatures")
