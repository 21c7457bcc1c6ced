"""Configuration layers, generated secrets and the refusal of unsafe production settings."""
import os
import stat

import pytest

from portal import create_app
from portal.config import ConfigError, normalise_database_url


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    for name in list(os.environ):
        if name.startswith("PORTAL_") and name != "PORTAL_INSTANCE_PATH" or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return tmp_path


def test_first_start_generates_private_keys(instance):
    app = create_app()
    for name in ("secret_key", "encryption.key"):
        assert stat.S_IMODE(os.stat(instance / name).st_mode) == 0o600
    assert len(app.secret_key) >= 32
    assert create_app().secret_key == app.secret_key  # kept, not regenerated
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance}/portal.sqlite3"


def test_layers_defaults_then_instance_file_then_environment(instance, monkeypatch):
    (instance / "config.py").write_text("LOG_LEVEL = 'ERROR'\nHSTS_SECONDS = 10\nPASSWORD_MIN_LENGTH = 14\n")
    monkeypatch.setenv("PORTAL_HSTS_SECONDS", "20")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db.example/portal")
    app = create_app()
    assert app.config["LOG_LEVEL"] == "ERROR"  # instance file over the default
    assert app.config["HSTS_SECONDS"] == 20  # environment over the instance file
    assert app.config["PASSWORD_MIN_LENGTH"] == 14
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/portal"


def test_test_config_replaces_instance_and_environment(instance, monkeypatch):
    (instance / "config.py").write_text("HSTS_SECONDS = 10\n")
    monkeypatch.setenv("PORTAL_HSTS_SECONDS", "20")
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(instance), "SECRET_KEY": "k" * 40})
    assert app.config["HSTS_SECONDS"] == 31536000


@pytest.mark.parametrize("key", ["dev", "change-me", "short-but-not-default"])
def test_production_refuses_a_default_secret_key(instance, monkeypatch, key):
    monkeypatch.setenv("PORTAL_SECRET_KEY", key)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()


def test_debug_tolerates_a_dev_key(instance):
    app = create_app({"DEBUG": True, "SECRET_KEY": "dev", "INSTANCE_PATH": str(instance)})
    assert app.secret_key == "dev"


def test_database_url_spellings():
    assert normalise_database_url("postgresql://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalise_database_url("postgres://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalise_database_url("sqlite:///x") == "sqlite:///x"


def test_wsgi_module_exposes_app(instance):
    import importlib

    import wsgi
    importlib.reload(wsgi)
    assert wsgi.app.name == "portal"


def test_health_and_readiness(client, make_app, tmp_path):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ok", "checks": {"database": "ok"}}
    broken = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["checks"]["database"] == "unreachable"


def test_instance_files_are_private_from_the_first_start(instance):
    """The SQLite database (and its -wal/-shm files), the secret key and the encryption key: owner only, whatever
    the umask; a new instance folder too."""
    folder = instance / "fresh"
    old = os.umask(0o022)
    try:
        app = create_app({"TESTING": True, "INSTANCE_PATH": str(folder)})
        with app.app_context():
            from portal.extensions import db
            with db.engine.connect() as conn:  # WAL: SQLite creates portal.sqlite3-wal and -shm
                conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
                conn.commit()
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
            db.engine.dispose()
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {"portal.sqlite3", "portal.sqlite3-wal", "portal.sqlite3-shm", "secret_key", "encryption.key"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_production_without_a_public_address_answers_only_loopback_names(instance):
    assert create_app().config["TRUSTED_HOSTS"] == ["localhost", "127.0.0.1"]


def test_public_base_url_or_trusted_hosts_lift_the_loopback_default(instance, monkeypatch):
    monkeypatch.setenv("PORTAL_PUBLIC_BASE_URL", "https://portal.example.com")
    assert create_app().config["TRUSTED_HOSTS"] is None  # every absolute URL comes from PUBLIC_BASE_URL
    monkeypatch.delenv("PORTAL_PUBLIC_BASE_URL")
    monkeypatch.setenv("PORTAL_TRUSTED_HOSTS", "portal.example.com, .admin.example.com")
    assert create_app().config["TRUSTED_HOSTS"] == ["portal.example.com", ".admin.example.com"]
    monkeypatch.setenv("PORTAL_TRUSTED_HOSTS", '["portal.example.com"]')  # JSON, like other PORTAL_* lists
    assert create_app().config["TRUSTED_HOSTS"] == ["portal.example.com"]


def test_debug_and_testing_answer_any_host(instance):
    assert create_app({"DEBUG": True, "SECRET_KEY": "dev", "INSTANCE_PATH": str(instance)}).config[
        "TRUSTED_HOSTS"] is None
