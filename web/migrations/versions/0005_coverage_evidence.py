"""Heartbeats kept as signed evidence: the signature headers (and signed path) as received.

Revision ID: 0005_coverage_evidence
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_coverage_evidence'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (not batch mode, which would rebuild the table and lose its append-only triggers).
    # Rows stored before this revision have none: they cannot be verified again and a bundle says so.
    op.add_column('heartbeats', sa.Column('signature', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('heartbeats', schema=None) as b:
        b.drop_column('signature')
