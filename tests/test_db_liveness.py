"""Pooled connections killed by the database between requests (pg_terminate_backend, as a restart or an idle timeout
would) cost the next request nothing: it gets a fresh connection instead of a 500, without pool_pre_ping's round
trip (portal/db_liveness.py). Runs on its own throwaway PostgreSQL database, whatever database the suite uses."""
from __future__ import annotations

import os
import time
import uuid

import flask_migrate
import psycopg
import pytest
import sqlalchemy as sa

from portal import create_app, db_liveness
from portal.config import normalise_database_url
from portal.extensions import db
from tests import conftest
from tests.conftest import create_admin, login

pytestmark = pytest.mark.postgres

SERVER = os.environ.get("PORTAL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _server() -> psycopg.Connection:
    try:
        return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {SERVER} is required and unreachable: {exc}")


@pytest.fixture
def pg_app(tmp_path):
    name = f"portal_liveness_{uuid.uuid4().hex[:10]}"
    with _server() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = sa.make_url(normalise_database_url(SERVER)).set(database=name).render_as_string(hide_password=False)
    app = create_app(conftest.test_config(url, tmp_path / "instance"))
    with app.app_context():
        flask_migrate.upgrade()
    try:
        yield app, name
    finally:
        with app.app_context():
            db.engine.dispose()
        with _server() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _terminate_pool(app, database: str) -> int:
    """pg_terminate_backend on every connection the app holds; waits until the server has closed them."""
    with app.app_context():
        idle = db.engine.pool.checkedin()
    with _server() as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,))]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the backends did not end"
            time.sleep(0.05)
    assert idle >= 1 and len(pids) >= idle, (idle, pids)  # the pool really held connections that are now dead
    return len(pids)


def test_engine_does_not_ping(pg_app):
    app, _ = pg_app
    with app.app_context():
        assert db.engine.pool._pre_ping is False
        assert sa.event.contains(db.engine, "checkout", db_liveness.refuse_dead)


def test_killed_backends_cost_the_next_request_nothing(pg_app):
    app, database = pg_app
    create_admin(app, "alice")
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    for _ in range(3):  # the page works, then again after every connection of the pool was killed
        assert client.get("/tenants/").status_code == 200
        assert _terminate_pool(app, database) >= 1
    api = app.test_client()
    assert api.get("/readyz").status_code == 200
    _terminate_pool(app, database)
    assert api.get("/readyz").get_json() == {"status": "ok", "checks": {"database": "ok"}}


def test_without_the_check_the_next_request_fails(pg_app):
    """The control: the same kill with the checkout hook removed does reach a request, so the test above tests it."""
    app, database = pg_app
    create_admin(app, "bob")
    client = app.test_client()
    assert login(client, "bob").status_code == 302
    assert client.get("/tenants/").status_code == 200
    with app.app_context():
        sa.event.remove(db.engine, "checkout", db_liveness.refuse_dead)
    _terminate_pool(app, database)
    assert client.get("/tenants/").status_code == 500  # the dead connection reached the request
    assert client.get("/tenants/").status_code == 200  # SQLAlchemy invalidated the pool: the next one is fresh


def test_a_quiet_connection_passes_and_a_closed_one_does_not(pg_app):
    app, _ = pg_app
    with app.app_context(), db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert db_liveness.is_quiet(raw)
    closed = psycopg.connect(SERVER)
    closed.close()
    assert not db_liveness.is_quiet(closed)
