"""Sealed copies built in the background (issue 14): the export jobs, their progress and their seal.

Revision ID: 0014_exportjobs
Revises: 0013_live
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014_exportjobs'
down_revision = '0013_live'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'export_jobs',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('label', sa.String(32), nullable=False),
        sa.Column('requested_by', sa.String(100), nullable=False),
        sa.Column('created_us', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('step', sa.String(16), nullable=False),
        sa.Column('worker', sa.String(200), nullable=False),
        sa.Column('lease_us', sa.BigInteger(), nullable=False),
        sa.Column('objects_done', sa.Integer(), nullable=False),
        sa.Column('objects_total', sa.Integer(), nullable=False),
        sa.Column('bytes_written', sa.BigInteger(), nullable=False),
        sa.Column('started_us', sa.BigInteger(), nullable=True),
        sa.Column('finished_us', sa.BigInteger(), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('sha256', sa.String(64), nullable=False),
        sa.Column('manifest_sha256', sa.String(64), nullable=False),
        sa.Column('segments', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_export_jobs_state', 'export_jobs', ['state', 'lease_us'])
    op.create_index('ix_export_jobs_requested_by', 'export_jobs', ['requested_by', 'id'])


def downgrade() -> None:
    op.drop_table('export_jobs')
