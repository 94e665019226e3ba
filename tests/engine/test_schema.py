"""The Alembic migrations and engine/schema.py describe the same tables (one cannot drift from the other)."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from usm_engine.engine.schema import metadata


def test_migrations_match_the_schema_module(engine):
    with engine.db.writer.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_migrating_twice_is_harmless(engine):
    engine.migrate()
    assert engine.list_definitions() == []
