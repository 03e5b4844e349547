"""Two-factor login (TOTP secret, last used time step, one-time recovery codes), a login's pending second
factor, and where a user's password is checked (local or the unit's LDAP directory).

Revision ID: 0011_twofactor
Revises: 0010_markers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011_twofactor'
down_revision = '0010_markers'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.add_column('users', sa.Column('auth_source', sa.String(16), nullable=False, server_default='local'))
    op.add_column('users', sa.Column('totp_secret', sa.String(64), nullable=True))
    op.add_column('users', sa.Column('totp_pending', sa.String(64), nullable=True))
    op.add_column('users', sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.add_column('users', sa.Column('totp_enrolled_at_us', sa.BigInteger(), nullable=True))
    op.add_column('login_sessions', sa.Column('stage', sa.String(8), nullable=False, server_default=''))
    op.create_table(
        'recovery_codes',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(64), nullable=False),
        sa.Column('created_at_us', sa.BigInteger(), nullable=False),
        sa.Column('used_at_us', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code_hash'),
    )
    with op.batch_alter_table('recovery_codes', schema=None) as b:
        b.create_index(b.f('ix_recovery_codes_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recovery_codes', schema=None) as b:
        b.drop_index(b.f('ix_recovery_codes_user_id'))
    op.drop_table('recovery_codes')
    with op.batch_alter_table('login_sessions', schema=None) as b:
        b.drop_column('stage')
    with op.batch_alter_table('users', schema=None) as b:
        for name in ('totp_enrolled_at_us', 'totp_last_step', 'totp_pending', 'totp_secret', 'auth_source'):
            b.drop_column(name)
