"""Live view (issue 15): each cached segment record keeps its chain value, so a recording session's live
refresh reads on from the last record already checked (verifier/live.py) instead of every record again; a
share says whether its outside party sees the prosecutors' own markers (web/shares.py).

Revision ID: 0013_live
Revises: 0012_retention
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013_live'
down_revision = '0012_retention'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (batch mode would rebuild the tables). Rows cached before have no chain value: the next
    # live refresh of such a session reads it in full once.
    op.add_column('session_segments', sa.Column('chain', sa.String(64), nullable=True))
    op.add_column('shares', sa.Column('server_markers', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('shares', schema=None) as b:
        b.drop_column('server_markers')
    with op.batch_alter_table('session_segments', schema=None) as b:
        b.drop_column('chain')
