"""Tenant Portal: onboarding tenants once for WSO2 API Manager and Identity Server 7.x."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from flask import Flask, g
from werkzeug.routing import IntegerConverter

from portal.config import (
    DefaultConfig,
    apply_instance_secrets,
    apply_trusted_hosts,
    check_config,
    normalise_database_url,
)


class DatabaseIdConverter(IntegerConverter):
    """<int:...> in a route is a database id: a number beyond the id columns' 32-bit INTEGER is a 404 from the
    router, not a database error (PostgreSQL refuses it with "integer out of range", SQLite past 2**63)."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        from portal.models.base import MAX_ID

        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. Configuration: defaults, then instance/config.py, then PORTAL_* variables and DATABASE_URL;
    a `test_config` replaces the instance and environment layers."""
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("PORTAL_INSTANCE_PATH")
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    app.url_map.converters["int"] = DatabaseIdConverter
    app.config.from_object(DefaultConfig)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("PORTAL")
        if os.environ.get("DATABASE_URL"):
            app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    else:
        app.config.update(test_config)

    from portal import logging as portal_logging
    portal_logging.configure(app.config["LOG_LEVEL"])

    Path(app.instance_path).mkdir(mode=0o700, parents=True, exist_ok=True)  # a new folder: its owner only
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "portal.sqlite3")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    _create_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
    apply_instance_secrets(app.config, app.instance_path)
    production = not (app.debug or app.testing)
    apply_trusted_hosts(app.config, production=production)
    check_config(app.config, production=production)

    _init_extensions(app)

    from portal import access, errors, hardening, input_guard, templating
    from portal.api import register_api
    from portal.cli import register_commands
    from portal.services.admin import passwords
    from portal.web import filters, register_blueprints

    hardening.init_app(app)
    access.init_app(app)
    input_guard.init_app(app)
    filters.init_app(app)
    templating.init_app(app)
    register_blueprints(app)
    register_api(app)
    errors.init_app(app)
    app.register_error_handler(passwords.HashingBusy, _hashing_busy)
    register_commands(app)
    return app


def _hashing_busy(exc):
    """Every password-hashing slot of this process stayed taken (a sign-in flood): 503 with Retry-After anywhere a
    password is hashed (sign-in handles its own, to show the form again)."""
    from flask import make_response

    from portal.errors import _render

    response = make_response(_render(503, f"The portal is busy checking passwords; try again in {exc.retry_after} s."))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _init_extensions(app: Flask) -> None:
    import sqlalchemy as sa

    from portal import db_liveness, encryption
    from portal.extensions import csrf, db, limiter, login_manager, migrate
    from portal.services.admin import sessions

    encryption.init_app(app)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _pool_options(app.config)
    db.init_app(app)
    with app.app_context():
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            sa.event.listen(db.engine, "connect", _sqlite_pragmas)
        db_liveness.install(db.engine)
    # Every mapper configured now, before requests run on threads: a request that builds an ORM object without a
    # query (services/admin/sessions.py) must not meet a mapper another thread is still configuring.
    sa.orm.configure_mappers()
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"
    # Flask-Login's "strong" protection only marks a *permanent* session non-fresh, which nothing here checks: the
    # binding that holds is the server-side session row's (browser and, by setting, network; services/sessions.py).
    login_manager.session_protection = None

    @login_manager.user_loader
    def load_user(token: str):
        from flask import request

        admin = sessions.load(token, user_agent=request.user_agent.string, ip=request.remote_addr)
        if admin is None:
            g.session_ended = True
        return admin

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import flash, redirect, request, url_for

        from portal.errors import problem, wants_json

        if wants_json():
            return problem(401, "Sign in to continue.")
        if g.get("session_ended"):
            flash("Your session has ended. Sign in again.", "info")
        next_url = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("auth.login", next=next_url))


def _pool_options(config) -> dict:
    """Engine options with a pool that has a connection for every outbox worker thread and its bulk and main
    threads (SQLAlchemy's own default, 5 + 10 overflow, made 32 threads queue for connections). An in-memory
    SQLite database has a single shared connection and takes no pool size."""
    import sqlalchemy as sa

    options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
    url = sa.engine.make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return options
    options.setdefault("pool_size", max(5, int(config["WORKER_CONCURRENCY"]) + 3))
    return options


def _create_sqlite_file(url: str) -> None:
    """SQLite creates its file with the umask (usually 0644): create it 0600 first. Its -wal and -shm files take
    the database file's mode."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):  # there already, or no folder: SQLite says so itself
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
