"""Retention, legal hold and disposal (issue 17): case outcomes, retention policies, holds, disposals, and the
tombstones disposals leave (append-only, kept for ever); the retention applied to each session.

Revision ID: 0012_retention
Revises: 0011_twofactor
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012_retention'
down_revision = '0011_twofactor'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'cases',
        sa.Column('case_number', sa.String(200), nullable=False),
        sa.Column('category', sa.String(64), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('status_at_us', sa.BigInteger(), nullable=False),
        sa.Column('final_at_us', sa.BigInteger(), nullable=True),
        sa.Column('updated_by', sa.String(100), nullable=False),
        sa.Column('updated_at_us', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('case_number'),
    )
    op.create_table(
        'retention_policies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('unit_id', sa.Integer(), nullable=True),
        sa.Column('category', sa.String(64), nullable=False),
        sa.Column('anchor', sa.String(16), nullable=False),
        sa.Column('years', sa.Integer(), nullable=False),
        sa.Column('days', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(16), nullable=False),
        sa.Column('created_by', sa.String(100), nullable=False),
        sa.Column('created_at_us', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_retention_policies_unit_id', 'retention_policies', ['unit_id'])
    op.create_table(
        'legal_holds',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('case_number', sa.String(200), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('placed_by', sa.String(100), nullable=False),
        sa.Column('placed_at_us', sa.BigInteger(), nullable=False),
        sa.Column('lifted_by', sa.String(100), nullable=False),
        sa.Column('lifted_at_us', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_legal_holds_session_id', 'legal_holds', ['session_id'])
    op.create_index('ix_legal_holds_case_number', 'legal_holds', ['case_number'])
    op.create_table(
        'disposals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('retain_until_us', sa.BigInteger(), nullable=False),
        sa.Column('policy', sa.Text(), nullable=False),
        sa.Column('proposed_by', sa.String(100), nullable=False),
        sa.Column('proposed_at_us', sa.BigInteger(), nullable=False),
        sa.Column('first_approver', sa.String(100), nullable=False),
        sa.Column('first_approved_us', sa.BigInteger(), nullable=True),
        sa.Column('second_approver', sa.String(100), nullable=False),
        sa.Column('second_approved_us', sa.BigInteger(), nullable=True),
        sa.Column('execute_after_us', sa.BigInteger(), nullable=True),
        sa.Column('stopped_by', sa.String(100), nullable=False),
        sa.Column('stopped_at_us', sa.BigInteger(), nullable=True),
        sa.Column('stop_reason', sa.Text(), nullable=False),
        sa.Column('executed_at_us', sa.BigInteger(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_disposals_session_id', 'disposals', ['session_id'])
    op.create_table(
        'tombstones',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('disposal_id', sa.Integer(), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.Column('at_us', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id'),
    )
    # Plain ADD COLUMNs (batch mode would rebuild sessions).
    op.add_column('sessions', sa.Column('retain_until_us', sa.BigInteger(), nullable=True))
    op.add_column('sessions', sa.Column('disposed_at_us', sa.BigInteger(), nullable=True))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER tombstones_no_{verb.lower()} BEFORE {verb} ON tombstones "
                       "BEGIN SELECT RAISE(ABORT, 'tombstones is append-only'); END")
    elif dialect == "postgresql":
        op.execute("""CREATE FUNCTION tombstones_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'tombstones is append-only'; END $$""")
        op.execute("CREATE TRIGGER tombstones_append_only BEFORE UPDATE OR DELETE ON tombstones "
                   "FOR EACH ROW EXECUTE FUNCTION tombstones_append_only()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS tombstones_append_only ON tombstones")
        op.execute("DROP FUNCTION IF EXISTS tombstones_append_only()")
    with op.batch_alter_table('sessions', schema=None) as b:
        b.drop_column('disposed_at_us')
        b.drop_column('retain_until_us')
    op.drop_table('tombstones')
    op.drop_index('ix_disposals_session_id', table_name='disposals')
    op.drop_table('disposals')
    op.drop_index('ix_legal_holds_case_number', table_name='legal_holds')
    op.drop_index('ix_legal_holds_session_id', table_name='legal_holds')
    op.drop_table('legal_holds')
    op.drop_index('ix_retention_policies_unit_id', table_name='retention_policies')
    op.drop_table('retention_policies')
    op.drop_table('cases')
