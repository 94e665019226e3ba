"""Shared fixtures. Every test gets a fresh database: a SQLite file by default, or the PostgreSQL
server in USM_TEST_DATABASE_URL (the schema is emptied first), so the whole suite runs on both."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from usm_engine.api.auth import token_entry

FIXTURES = Path(__file__).parent / "fixtures"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Tokens the test app knows: role name -> token. 'requester' and 'service-manager' are lane roles of
# the approval fixture's lanes "Requester" and "Service manager".
TOKENS = {
    "admin": "admin-token",
    "designer": "designer-token",
    "system": "system-token",
    "auditor": "auditor-token",
    "requester": "requester-token",
    "service-manager": "manager-token",
    "none": "no-roles-token",
}


def bearer(role: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def reset_postgres(url: str) -> None:
    """An empty database at the newest schema. Emptying the tables is much faster than dropping and
    migrating for every test; the schema is rebuilt only when it is not at the newest revision and layout."""
    from alembic.script import ScriptDirectory

    from usm_engine.engine.database import MIGRATIONS_DIR
    from usm_engine.engine.schema import metadata

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        present = conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar()
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if present else None
        if current == head and _indexes_of(conn) == {index.name for table in metadata.sorted_tables
                                                     for index in table.indexes}:
            tables = ", ".join(table.name for table in metadata.sorted_tables)
            # The append-only trigger refuses TRUNCATE on events: lift it for the reset only.
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER USER"))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            conn.execute(text("ALTER TABLE events ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _indexes_of(conn) -> set[str]:
    """The indexes of the schema other than those of its keys and unique constraints: a database migrated by
    an unfinished draft of the newest revision carries that revision's number with another layout."""
    constraints = conn.execute(text("SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace"))
    indexes = conn.execute(text("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"))
    return set(indexes.scalars()) - set(constraints.scalars())


def postgres_url_or_skip() -> str:
    """The PostgreSQL URL for tests that need PostgreSQL itself. In CI an unreachable server fails the
    test instead of skipping it, so a green CI run cannot hide untested PostgreSQL behaviour."""
    url = os.environ.get("USM_TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL
    if not url.startswith("postgresql"):
        url = DEFAULT_POSTGRES_URL
    try:
        engine = create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server here"
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {url}: {exc}")
        pytest.skip(f"no PostgreSQL server reachable at {url} (allowed outside CI only)")
    return url


@pytest.fixture
def database_url(tmp_path) -> str:
    url = os.environ.get("USM_TEST_DATABASE_URL")
    if url:
        reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path}/usm-test.db"


@pytest.fixture
def tokens_file(tmp_path) -> str:
    path = tmp_path / "tokens.toml"
    entries = [token_entry(f"{role}-user", [] if role == "none" else [role], token)
               for role, token in TOKENS.items() if role != "admin"]
    path.write_text("".join(entries))
    return str(path)


@pytest.fixture
def app_factory(database_url, tokens_file, request):
    apps = []

    def make(clock=None, **overrides):
        from usm_engine.api.app import create_app
        from usm_engine.api.settings import settings_from_env

        config = {"USM_DATABASE_URL": database_url, "USM_ADMIN_TOKEN": TOKENS["admin"],
                  "USM_TOKENS_FILE": tokens_file, **overrides}
        app = create_app(settings_from_env(overrides=config), clock=clock)
        server_errors = []

        @app.after_request
        def _record_5xx(response):
            if response.status_code >= 500:
                server_errors.append(response.get_data(as_text=True))
            return response

        apps.append((app, server_errors))
        return app

    yield make
    for app, _ in apps:
        app.extensions["usm_engine"].close()
    # A 5xx is a bug wherever it happens: no test may pass while the server failed underneath it
    # (except the one test that provokes a 5xx on purpose to check it is logged).
    failures = [error for _, errors in apps for error in errors]
    if request.node.get_closest_marker("provokes_5xx") is None:
        assert not failures, f"the server answered 5xx during this test: {failures}"


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


def fixture_files(*names: str) -> list[tuple[str, bytes]]:
    return [(name, (FIXTURES / name).read_bytes()) for name in names]


APPROVAL = ("approval.bpmn", "submit.schema.json", "decide.schema.json")


def deploy(client, *names: str, role: str = "designer"):
    """Deploy fixture files through the API as one multipart upload; returns the response."""
    data = {"files": [((FIXTURES / name).open("rb"), name) for name in names]}
    response = client.post("/api/v1/definitions", data=data, content_type="multipart/form-data",
                           headers=bearer(role))
    for handle, _ in data["files"]:
        handle.close()
    return response


@pytest.fixture
def engine(database_url):
    from usm_engine.engine.service import Engine, EngineSettings

    instance = Engine(EngineSettings(database_url))
    instance.migrate()
    yield instance
    instance.close()


@pytest.fixture
def postgres_engine():
    """An engine on PostgreSQL whatever USM_TEST_DATABASE_URL says, for tests of PostgreSQL's own statements."""
    from usm_engine.engine.service import Engine, EngineSettings

    url = postgres_url_or_skip()
    reset_postgres(url)
    instance = Engine(EngineSettings(url))
    instance.migrate()
    yield instance
    instance.close()


@pytest.fixture
def clocked_engine(database_url):
    """An engine on a clock that stands still until the test moves it: (engine, clock)."""
    from usm_engine.engine.clock import FixedClock
    from usm_engine.engine.service import Engine, EngineSettings

    clock = FixedClock()
    instance = Engine(EngineSettings(database_url), clock=clock)
    instance.migrate()
    yield instance, clock
    instance.close()
