"""The migrations build the schema the code declares (web/models.py), on SQLite and on PostgreSQL.

A model changed without its migration (a table, a column, an index, a type, a NOT NULL) works in every test
that builds its database from the models, and fails on the first server upgraded with `irms-web db upgrade`.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from web.db import Database
from web.models import Base


def _differences(url: str) -> list[Any]:
    db = Database(url)  # db_url: a database migrated to head by `upgrade`, as `irms-web db upgrade` does
    try:
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            return [d for d in compare_metadata(ctx, Base.metadata) if not _alembic_own(d)]
    finally:
        db.dispose()


def _alembic_own(diff: Any) -> bool:
    """Alembic's own version table is not a model."""
    return bool(diff[0] == "remove_table" and diff[1].name == "alembic_version")


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    assert _differences(db_url) == []
