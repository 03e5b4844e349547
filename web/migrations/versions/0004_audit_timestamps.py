"""RFC 3161 tokens over signed audit heads, kept outside the audit log (append-only).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'audit_timestamps',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.Column('head', sa.Text(), nullable=False),
        sa.Column('token', sa.LargeBinary(), nullable=False),
        sa.Column('at_us', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('audit_timestamps', schema=None) as b:
        b.create_index(b.f('ix_audit_timestamps_seq'), ['seq'], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_timestamps_no_{verb.lower()} BEFORE {verb} ON audit_timestamps "
                       f"BEGIN SELECT RAISE(ABORT, 'audit_timestamps: {verb} refused'); END")
    elif dialect == "postgresql":
        op.execute("""CREATE FUNCTION audit_timestamps_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit_timestamps: % refused', TG_OP; END $$""")
        op.execute("CREATE TRIGGER audit_timestamps_refuse BEFORE UPDATE OR DELETE ON audit_timestamps "
                   "FOR EACH ROW EXECUTE FUNCTION audit_timestamps_refuse()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_timestamps_no_{verb}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_timestamps_refuse ON audit_timestamps")
        op.execute("DROP FUNCTION IF EXISTS audit_timestamps_refuse()")
    op.drop_table('audit_timestamps')
