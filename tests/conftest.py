"""Fixtures: a migrated database per run (SQLite, or PostgreSQL when PORTAL_TEST_PG_ADMIN_URL is set),
an app per test with clean tables, clients signed in per role."""
from __future__ import annotations

import os
import re
import uuid

import flask_migrate
import pytest
import sqlalchemy as sa

from portal import create_app
from portal.config import normalise_database_url
from portal.extensions import db as _db
from portal.models import Base
from portal.services.admin import admins
from portal.services.context import Actor
from tests.ldap_server import slapd_fixture
from tests.markers import pytest_collection_modifyitems  # noqa: F401 - marks each test by what it needs
from tests.oidc_server import idp  # noqa: F401 - a session fixture: the fake OpenID provider

pytest_plugins = ["tests.entra_fixtures"]  # entra_sim: the Entra ID simulator as a subprocess

slapd = slapd_fixture(scope="session")  # one real OpenLDAP server for the whole run

PG_ADMIN_URL = os.environ.get("PORTAL_TEST_PG_ADMIN_URL")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """SQLite file by default; with PORTAL_TEST_PG_ADMIN_URL a throwaway PostgreSQL database, dropped at the end.
    If PostgreSQL was asked for and cannot be reached, the run fails: it never falls back silently."""
    if not PG_ADMIN_URL:
        yield "sqlite:///" + str(tmp_path_factory.mktemp("db") / "portal-test.sqlite3")
        return
    server = sa.create_engine(normalise_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"portal_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield server.url.set(database=name).render_as_string(hide_password=False)
    with server.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


def test_config(database_url: str, instance_path, **overrides) -> dict:
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_PATH": str(instance_path),
        "SECRET_KEY": "test-secret-key-" + "x" * 40,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        # argon2id still, with cheap parameters so the suite stays fast.
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1,
        "LOG_LEVEL": "WARNING",
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def migrated_url(database_url, tmp_path_factory):
    """The schema comes only from the migrations, as in production."""
    app = create_app(test_config(database_url, tmp_path_factory.mktemp("instance")))
    with app.app_context():
        flask_migrate.upgrade()
        _db.engine.dispose()
    return database_url


def _truncate(app) -> None:
    with app.app_context():
        for table in reversed(Base.metadata.sorted_tables):
            _db.session.execute(table.delete())
        _db.session.commit()
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def make_app(migrated_url, tmp_path):
    """Build apps with config overrides; tables are emptied after the test."""
    apps = []

    def make(**overrides):
        app = create_app(test_config(migrated_url, tmp_path / "instance", **overrides))
        apps.append(app)
        return app

    yield make
    if apps:
        _truncate(apps[0])
        for app in apps[1:]:
            with app.app_context():
                _db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app, make_app):
    """The database, for assertions. It lives in the context of a second app on the same database: if the test
    held `app`'s own context, test-client requests would reuse it and share `g` (and the signed-in user)."""
    with make_app().app_context():
        yield _db


def create_admin(app, username: str, role: str = "admin", password: str = PASSWORD):
    """An account that has already chosen its password."""
    with app.app_context():
        result = admins.create_admin(username, role, Actor.cli(), password=password)
        return result.admin.id


def login(client, username: str, password: str = PASSWORD, **kwargs):
    data = {"username": username, "password": password}
    if token := kwargs.pop("csrf_token", None):
        data["csrf_token"] = token
    return client.post("/login", data=data, **kwargs)


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def signed_in(app):
    """signed_in(role) -> a test client signed in as a fresh account with that role."""

    def make(role: str = "admin", username: str | None = None):
        name = username or f"{role}-user"
        create_admin(app, name, role)
        client = app.test_client()
        response = login(client, name)
        assert response.status_code == 302, response.get_data(as_text=True)
        client.username = name
        return client

    return make


@pytest.fixture
def admin_client(signed_in):
    return signed_in("admin")


@pytest.fixture
def operator_client(signed_in):
    return signed_in("operator")


@pytest.fixture
def auditor_client(signed_in):
    return signed_in("auditor")
