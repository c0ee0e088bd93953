"""Signed checkpoints over the whole log (engine.checkpoints.format): one row per checkpoint,
with the compact range of the Merkle tree at its size and the event hashes it added. A new table
only, so no batch mode is needed on SQLite; the same statements run on PostgreSQL.

Revision ID: 0004_checkpoints
Revises: 0003_operation_index
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_checkpoints"
down_revision = "0003_operation_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.Column("leaves", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_checkpoints"),
    )
    op.create_index("ix_checkpoints_size", "checkpoints", ["size"])


def downgrade() -> None:
    op.drop_index("ix_checkpoints_size", table_name="checkpoints")
    op.drop_table("checkpoints")
