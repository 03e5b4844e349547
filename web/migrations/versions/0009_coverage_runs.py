"""Heartbeat runs (docs/evidence-format.md, "Heartbeat runs"): each heartbeat's credited run start, and each
station's latest failing heartbeat (a run claimed across it is refused).

Revision ID: 0009_coverage_runs
Revises: 0008_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_coverage_runs'
down_revision = '0008_accounts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (batch mode would rebuild heartbeats and lose its append-only triggers). Rows stored
    # before have no run: an export keeps every one of them.
    op.add_column('heartbeats', sa.Column('run_since_us', sa.BigInteger(), nullable=True))
    op.add_column('stations', sa.Column('last_fail_us', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stations', schema=None) as b:
        b.drop_column('last_fail_us')
    with op.batch_alter_table('heartbeats', schema=None) as b:
        b.drop_column('run_since_us')
