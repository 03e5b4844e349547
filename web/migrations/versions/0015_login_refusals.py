"""Logins the throttle refused (the audit of refusals, one per address between two counted failures).

Revision ID: 0015_login_refusals
Revises: 0014_exportjobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015_login_refusals'
down_revision = '0014_exportjobs'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'login_refusals',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('username', sa.String(100), nullable=False),
        sa.Column('ip', sa.String(64), nullable=False),
        sa.Column('at_us', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('login_refusals', schema=None) as b:
        b.create_index(b.f('ix_login_refusals_ip'), ['ip'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_refusals', schema=None) as b:
        b.drop_index(b.f('ix_login_refusals_ip'))
    op.drop_table('login_refusals')
