"""Node ids (issue 29, docs/fleet.md): the node that wrote each event, and which node each stream
belongs to, for several daemons writing one PostgreSQL database.

`events.node_id` is added as a nullable column, and the events already in the log keep NULL: a
migration does not know which node it runs for (alembic on the command line has no daemon config),
and a database that several nodes already shared cannot say which of them wrote what. NULL means
"written before node ids were recorded", never "this node". The column is appended (ADD COLUMN,
instant on both databases: no table rewrite, even on SQLite).

`stream_owners` starts empty: a stream is claimed by the first write a node makes to it, unless
its last event names another node.

Revision ID: 0007_node_ids
Revises: 0006_outbox_cursors
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_node_ids"
down_revision = "0006_outbox_cursors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("node_id", sa.String(128), nullable=True))
    op.create_table(
        "stream_owners",
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name="pk_stream_owners"),
    )


def downgrade() -> None:
    op.drop_table("stream_owners")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("node_id")
