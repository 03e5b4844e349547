"""Sessions known to the server, their cached segment records, session events, custodian keys.

session_events is append-only (UPDATE and DELETE refused); custodian_keys refuses DELETE
(old keys must stay so old sessions stay readable).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('station_id', sa.String(64), nullable=False),
        sa.Column('site', sa.String(64), nullable=False),
        sa.Column('room', sa.String(64), nullable=False),
        sa.Column('case_number', sa.String(200), nullable=False),
        sa.Column('suspect', sa.String(300), nullable=False),
        sa.Column('interrogators', sa.Text(), nullable=False),
        sa.Column('legal_basis', sa.Text(), nullable=False),
        sa.Column('started_at_us', sa.BigInteger(), nullable=True),
        sa.Column('ended_at_us', sa.BigInteger(), nullable=True),
        sa.Column('end_reason', sa.String(64), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('prefix', sa.String(300), nullable=False),
        sa.Column('header_known', sa.Boolean(), nullable=False),
        sa.Column('last_event_us', sa.BigInteger(), nullable=True),
        sa.Column('verification', sa.String(16), nullable=False),
        sa.Column('verification_findings', sa.Text(), nullable=False),
        sa.Column('verified_at_us', sa.BigInteger(), nullable=True),
        sa.Column('segment_count', sa.Integer(), nullable=True),
        sa.Column('duration_us', sa.BigInteger(), nullable=True),
        sa.Column('manifest_sha256', sa.String(64), nullable=False),
        sa.Column('manifest', sa.Text(), nullable=False),
        sa.Column('updated_at_us', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id'),
    )
    with op.batch_alter_table('sessions', schema=None) as b:
        b.create_index('ix_sessions_started', ['started_at_us'], unique=False)
        b.create_index('ix_sessions_site_room', ['site', 'room'], unique=False)
        b.create_index(b.f('ix_sessions_case_number'), ['case_number'], unique=False)
        b.create_index(b.f('ix_sessions_suspect'), ['suspect'], unique=False)

    op.create_table(
        'session_segments',
        sa.Column('session_pk', sa.Integer(), nullable=False),
        sa.Column('idx', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('run', sa.Integer(), nullable=False),
        sa.Column('key_index', sa.Integer(), nullable=False),
        sa.Column('start_us', sa.BigInteger(), nullable=False),
        sa.Column('duration_us', sa.BigInteger(), nullable=False),
        sa.Column('cipher_sha256', sa.String(64), nullable=False),
        sa.Column('cipher_size', sa.BigInteger(), nullable=False),
        sa.Column('plain_sha256', sa.String(64), nullable=False),
        sa.Column('plain_size', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['session_pk'], ['sessions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('session_pk', 'idx'),
    )

    op.create_table(
        'session_events',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('station_pk', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('site', sa.String(64), nullable=False),
        sa.Column('room', sa.String(64), nullable=False),
        sa.Column('at_us', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('received_us', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['station_pk'], ['stations.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('station_pk', 'session_id', 'seq', name='uq_session_events_seq'),
    )
    with op.batch_alter_table('session_events', schema=None) as b:
        b.create_index('ix_session_events_session', ['session_id', 'at_us'], unique=False)

    op.create_table(
        'custodian_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key_id', sa.String(32), nullable=False),
        sa.Column('public_pem', sa.Text(), nullable=False),
        sa.Column('private_pem', sa.Text(), nullable=False),
        sa.Column('created_at_us', sa.BigInteger(), nullable=False),
        sa.Column('created_by', sa.String(100), nullable=False),
        sa.Column('current', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_id'),
    )
    _refuse('session_events', ('UPDATE', 'DELETE'))
    _refuse('custodian_keys', ('DELETE',))


def downgrade() -> None:
    _drop_refusals('session_events', ('UPDATE', 'DELETE'))
    _drop_refusals('custodian_keys', ('DELETE',))
    op.drop_table('custodian_keys')
    op.drop_table('session_events')
    op.drop_table('session_segments')
    op.drop_table('sessions')


def _refuse(table: str, verbs: tuple[str, ...]) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in verbs:
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table}: {verb} refused'); END")
    elif dialect == "postgresql":
        op.execute(f"""CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{table}: % refused', TG_OP; END $$""")
        op.execute(f"CREATE TRIGGER {table}_refuse BEFORE {' OR '.join(verbs)} ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse()")


def _drop_refusals(table: str, verbs: tuple[str, ...]) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in verbs:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb.lower()}")
    elif dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_refuse()")
