"""A session's case number as filed at the station, and whether a prosecutor corrected it.

Revision ID: 0016_case_corrections
Revises: 0015_login_refusals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016_case_corrections'
down_revision = '0015_login_refusals'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as b:
        b.add_column(sa.Column('case_number_filed', sa.String(200), nullable=False, server_default=''))
        b.add_column(sa.Column('case_corrected', sa.Boolean(), nullable=False, server_default=sa.text('false')))
    op.execute("UPDATE sessions SET case_number_filed = case_number")


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as b:
        b.drop_column('case_corrected')
        b.drop_column('case_number_filed')
