"""Markers added on the server (prosecutors replaying or watching live: annotations, never evidence) and
live views (who watches a session as it records; the station is told, web/live.py).

Revision ID: 0010_markers
Revises: 0009_coverage_runs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010_markers'
down_revision = '0009_coverage_runs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'session_markers',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('at_us', sa.BigInteger(), nullable=False),
        sa.Column('label', sa.String(200), nullable=False),
        sa.Column('author', sa.String(100), nullable=False),
        sa.Column('author_name', sa.String(200), nullable=False),
        sa.Column('unit_name', sa.String(300), nullable=False),
        sa.Column('created_us', sa.BigInteger(), nullable=False),
    )
    op.create_index('ix_session_markers_session', 'session_markers', ['session_id', 'at_us'])
    op.create_table(
        'live_views',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('username', sa.String(100), nullable=False),
        sa.Column('display_name', sa.String(200), nullable=False),
        sa.Column('unit_name', sa.String(300), nullable=False),
        sa.Column('started_us', sa.BigInteger(), nullable=False),
        sa.Column('last_seen_us', sa.BigInteger(), nullable=False),
        sa.Column('ended_us', sa.BigInteger(), nullable=True),
    )
    op.create_index('ix_live_views_session', 'live_views', ['session_id', 'ended_us'])


def downgrade() -> None:
    op.drop_index('ix_live_views_session', table_name='live_views')
    op.drop_table('live_views')
    op.drop_index('ix_session_markers_session', table_name='session_markers')
    op.drop_table('session_markers')
