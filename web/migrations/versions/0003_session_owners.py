"""Which station owns a session: the first station to claim it (a witnessed head or an event).

A session's owner is the station that signed its header (sessions.header_known, sessions.station_id);
before the header arrives, the station in session_owners. Only the owner's heads and events are
accepted. Claims are never deleted.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'session_owners',
        sa.Column('session_id', sa.String(64), nullable=False),
        sa.Column('station_pk', sa.Integer(), nullable=False),
        sa.Column('claimed_us', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['station_pk'], ['stations.id']),
        sa.PrimaryKeyConstraint('session_id'),
    )
    # Sessions known before: their first claimant by an event, else by a witnessed head.
    op.execute("""INSERT INTO session_owners (session_id, station_pk, claimed_us)
        SELECT e.session_id, e.station_pk, e.received_us FROM session_events e
        WHERE e.id = (SELECT min(e2.id) FROM session_events e2 WHERE e2.session_id = e.session_id)""")
    op.execute("""INSERT INTO session_owners (session_id, station_pk, claimed_us)
        SELECT w.session_id, w.station_pk, w.received_us FROM witnessed_heads w
        WHERE w.id = (SELECT min(w2.id) FROM witnessed_heads w2 WHERE w2.session_id = w.session_id)
        AND w.session_id NOT IN (SELECT session_id FROM session_owners)""")
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER session_owners_no_delete BEFORE DELETE ON session_owners "
                   "BEGIN SELECT RAISE(ABORT, 'session_owners: DELETE refused'); END")
    elif dialect == "postgresql":
        op.execute("""CREATE FUNCTION session_owners_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'session_owners: % refused', TG_OP; END $$""")
        op.execute("CREATE TRIGGER session_owners_refuse BEFORE DELETE ON session_owners "
                   "FOR EACH ROW EXECUTE FUNCTION session_owners_refuse()")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS session_owners_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS session_owners_refuse ON session_owners")
        op.execute("DROP FUNCTION IF EXISTS session_owners_refuse()")
    op.drop_table('session_owners')
