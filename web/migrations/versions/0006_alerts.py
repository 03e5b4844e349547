"""Alerts: one open alert per room, told once by e-mail and webhook, acknowledged, cleared.

Revision ID: 0006_alerts
Revises: 0005_coverage_evidence
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_alerts'
down_revision = '0005_coverage_evidence'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alerts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('room_id', sa.Integer(), sa.ForeignKey('rooms.id'), nullable=False),
        sa.Column('station_id', sa.String(64), nullable=False),
        sa.Column('opened_us', sa.BigInteger(), nullable=False),
        sa.Column('reasons', sa.Text(), nullable=False),
        sa.Column('notified_us', sa.BigInteger(), nullable=True),
        sa.Column('acked_us', sa.BigInteger(), nullable=True),
        sa.Column('acked_by', sa.String(100), nullable=False),
        sa.Column('cleared_us', sa.BigInteger(), nullable=True),
        sa.Column('clear_notified_us', sa.BigInteger(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
    )
    op.create_index('uq_alerts_open_room', 'alerts', ['room_id'], unique=True,
                    sqlite_where=sa.text('cleared_us IS NULL'), postgresql_where=sa.text('cleared_us IS NULL'))
    op.create_index('ix_alerts_opened', 'alerts', ['opened_us'])
    op.create_table(
        'alert_deliveries',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.ForeignKey('alerts.id'),
                  nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('channel', sa.String(16), nullable=False),
        sa.Column('sent_us', sa.BigInteger(), nullable=False),
        sa.UniqueConstraint('alert_id', 'kind', 'channel', name='uq_alert_deliveries'),
    )


def downgrade() -> None:
    op.drop_table('alert_deliveries')
    op.drop_index('ix_alerts_opened', table_name='alerts')
    op.drop_index('uq_alerts_open_room', table_name='alerts')
    op.drop_table('alerts')
