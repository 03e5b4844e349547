"""Server-side login sessions (revocable), and the login throttle's per (user, address) index.

Revision ID: 0008_accounts
Revises: 0007_scoping
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_accounts'
down_revision = '0007_scoping'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'login_sessions',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('token_hash', sa.String(64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('ip', sa.String(64), nullable=False),
        sa.Column('created_at_us', sa.BigInteger(), nullable=False),
        sa.Column('last_seen_us', sa.BigInteger(), nullable=False),
        sa.Column('expires_at_us', sa.BigInteger(), nullable=False),
        sa.Column('ended_at_us', sa.BigInteger(), nullable=True),
        sa.Column('end_reason', sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('login_sessions', schema=None) as b:
        b.create_index(b.f('ix_login_sessions_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('login_failures', schema=None) as b:
        b.create_index('ix_login_failures_user_ip', ['username', 'ip', 'at_us'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_failures', schema=None) as b:
        b.drop_index('ix_login_failures_user_ip')
    with op.batch_alter_table('login_sessions', schema=None) as b:
        b.drop_index(b.f('ix_login_sessions_user_id'))
    op.drop_table('login_sessions')
