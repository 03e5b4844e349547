"""Scoping: units (a tree), sites and rooms in units, users in units, cases assigned to prosecutors,
sessions shared with outside parties until a time (web/scope.py, web/shares.py).

shares refuses DELETE (a share ends by its time or by revocation, and its row is the record).

Revision ID: 0007_scoping
Revises: 0006_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_scoping'
down_revision = '0006_alerts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'units',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(64), nullable=False),
        sa.Column('name', sa.String(300), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('parent_id', sa.Integer(), nullable=True),
        sa.Column('created_at_us', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['parent_id'], ['units.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code'),
    )
    op.create_index('ix_units_parent_id', 'units', ['parent_id'])
    # A plain ADD COLUMN (no table rebuild: sites and rooms are referenced by other tables).
    for table in ("sites", "rooms"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE {table} ADD COLUMN unit_id INTEGER REFERENCES units (id)")
        else:
            op.add_column(table, sa.Column('unit_id', sa.Integer(),
                                           sa.ForeignKey('units.id', name=f'fk_{table}_unit'), nullable=True))
        op.create_index(f'ix_{table}_unit_id', table, ['unit_id'])
    op.create_table(
        'user_units',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('unit_id', sa.Integer(), nullable=False),
        sa.Column('personal_data', sa.Boolean(), nullable=False),
        sa.Column('granted_by', sa.String(100), nullable=False),
        sa.Column('granted_at_us', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id']),
        sa.PrimaryKeyConstraint('user_id', 'unit_id'),
    )
    op.create_index('ix_user_units_unit_id', 'user_units', ['unit_id'])
    op.create_table(
        'case_assignments',
        sa.Column('case_number', sa.String(200), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('granted_by', sa.String(100), nullable=False),
        sa.Column('granted_at_us', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('case_number', 'user_id'),
    )
    op.create_index('ix_case_assignments_user_id', 'case_assignments', ['user_id'])
    op.create_table(
        'shares',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(64), nullable=False),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('party', sa.String(200), nullable=False),
        sa.Column('party_kind', sa.String(32), nullable=False),
        sa.Column('allow', sa.String(16), nullable=False),
        sa.Column('manifest_sha256', sa.String(64), nullable=False),
        sa.Column('chain_head', sa.String(64), nullable=False),
        sa.Column('created_by', sa.String(100), nullable=False),
        sa.Column('created_at_us', sa.BigInteger(), nullable=False),
        sa.Column('expires_at_us', sa.BigInteger(), nullable=False),
        sa.Column('revoked_at_us', sa.BigInteger(), nullable=True),
        sa.Column('revoked_by', sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code_hash'),
    )
    op.create_index('ix_shares_session_id', 'shares', ['session_id'])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER shares_no_delete BEFORE DELETE ON shares "
                   "BEGIN SELECT RAISE(ABORT, 'shares: DELETE refused'); END")
    elif dialect == "postgresql":
        op.execute("""CREATE FUNCTION shares_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'shares: % refused', TG_OP; END $$""")
        op.execute("CREATE TRIGGER shares_refuse BEFORE DELETE ON shares "
                   "FOR EACH ROW EXECUTE FUNCTION shares_refuse()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS shares_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS shares_refuse ON shares")
        op.execute("DROP FUNCTION IF EXISTS shares_refuse()")
    op.drop_table('shares')
    op.drop_table('case_assignments')
    op.drop_table('user_units')
    with op.batch_alter_table('rooms') as b:
        b.drop_index('ix_rooms_unit_id')
        b.drop_column('unit_id')
    with op.batch_alter_table('sites') as b:
        b.drop_index('ix_sites_unit_id')
        b.drop_column('unit_id')
    op.drop_table('units')
