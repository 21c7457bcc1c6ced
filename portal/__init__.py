"""Tenant Portal: onboarding tenants once for WSO2 API Manager and Identity Server 7.x."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, g
from werkzeug.routing import IntegerConverter

from portal.config import DefaultConfig, apply_instance_secrets, check_config, normalise_database_url


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

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "portal.sqlite3")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    apply_instance_secrets(app.config, app.instance_path)
    check_config(app.config, production=not (app.debug or app.testing))

    _init_extensions(app)

    from portal import access, errors, hardening, input_guard, templating
    from portal.cli import register_commands
    from portal.web import register_blueprints

    from portal.web import filters

    hardening.init_app(app)
    access.init_app(app)
    input_guard.init_app(app)
    filters.init_app(app)
    templating.init_app(app)
    register_blueprints(app)
    errors.init_app(app)
    register_commands(app)
    return app


def _init_extensions(app: Flask) -> None:
    import sqlalchemy as sa

    from portal import encryption
    from portal.extensions import csrf, db, limiter, login_manager, migrate
    from portal.services import sessions

    encryption.init_app(app)
    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            sa.event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(token: str):
        admin = sessions.load(token)
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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
