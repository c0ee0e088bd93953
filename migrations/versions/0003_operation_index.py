"""An index on each event's operation id (inside its JSON metadata), so that an operation's events
are found without scanning the log: `GET /api/operations/{id}` after the operation has left
memory, and the audit's `operation` filter. An expression index, not a copied column: the
metadata stays the one place the operation id is written (and the hash chain covers it).

Revision ID: 0003_operation_index
Revises: 0002_snapshots
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003_operation_index"
down_revision = "0002_snapshots"
branch_labels = None
depends_on = None

# The same expression text the store queries with (Backend.operation_id, engine/store/backends/).
EXPRESSIONS = {
    "sqlite": "CREATE INDEX ix_events_operation_id ON events (json_extract(metadata, '$.operation_id'))",
    "postgresql": "CREATE INDEX ix_events_operation_id ON events ((metadata->>'operation_id'))",
}


def upgrade() -> None:
    op.execute(EXPRESSIONS[op.get_bind().dialect.name])


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_operation_id")
