"""Checkpoints per node (issue 29, docs/fleet.md): each node signs a log of its own events, so the
checkpoints table is keyed by (node_id, seq) and two nodes on one database never collide on seq.

`node_id` is the node that signed the row, as its signed body says; the rows already there get it
from their body (a single node's checkpoints stay one log, unchanged). A row whose body does not
read keeps the empty node, so verification still names it. `upto_position` is the log position
of the last event a checkpoint covers: a node's leaves are its own events, so a tree size is no
longer a position. It is bookkeeping for the daemon's resume at boot, never trusted by
verification; the rows already there cover the whole log, where the size is that position.

SQLite cannot change a primary key in place: batch mode copies the table (it holds one row per
checkpoint, a few thousand at most).

Revision ID: 0008_checkpoints_per_node
Revises: 0007_node_ids
Create Date: 2026-12-06
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0008_checkpoints_per_node"
down_revision = "0007_node_ids"
branch_labels = None
depends_on = None


def _node_of(body: object) -> str:
    try:
        node = json.loads(body)["node"] if isinstance(body, str) else None
    except (ValueError, TypeError, KeyError):
        return ""
    return node if isinstance(node, str) else ""


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(sa.Column("node_id", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("upto_position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
    table = sa.table(
        "checkpoints",
        sa.column("seq", sa.Integer()),
        sa.column("size", sa.BigInteger()),
        sa.column("body", sa.Text()),
        sa.column("node_id", sa.String()),
        sa.column("upto_position", sa.BigInteger()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(table.c.seq, table.c.size, table.c.body)).all()
    for seq, size, body in rows:
        conn.execute(table.update().where(table.c.seq == seq).values(node_id=_node_of(body), upto_position=size))
    with op.batch_alter_table("checkpoints") as batch:
        batch.alter_column("node_id", existing_type=sa.String(128), nullable=False)
        batch.drop_constraint("pk_checkpoints", type_="primary")
        batch.create_primary_key("pk_checkpoints", ["node_id", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_constraint("pk_checkpoints", type_="primary")
        batch.create_primary_key("pk_checkpoints", ["seq"])
        batch.drop_column("upto_position")
        batch.drop_column("node_id")
