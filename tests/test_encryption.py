"""Secrets at rest: encrypted in the column, readable through the model, re-encrypted by rotate-key."""
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from portal.encryption import Cipher, SecretUnreadable
from portal.extensions import db as _db
from portal.models import Setting


def _store(app, key="wso2.is.password", secret="s3cr3t-value"):
    with app.app_context():
        _db.session.add(Setting(key=key, value={"user": "portal"}, secret=secret))
        _db.session.commit()


def _raw(app, key="wso2.is.password") -> str:
    with app.app_context():
        return _db.session.execute(sa.text("SELECT secret FROM setting WHERE key = :k"), {"k": key}).scalar_one()


def _read(app, key="wso2.is.password") -> str:
    with app.app_context():
        return _db.session.get(Setting, key).secret


def test_secret_columns_are_encrypted(app):
    _store(app)
    raw = _raw(app)
    assert "s3cr3t-value" not in raw and raw.startswith("gAAAA")
    assert _read(app) == "s3cr3t-value"


def test_instance_key_file_is_private(app):
    path = os.path.join(app.instance_path, "encryption.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_rotate_key_with_the_instance_key_file(make_app):
    app = make_app()
    for i in range(3):
        _store(app, f"k{i}", f"value-{i}")
    key_file = os.path.join(app.instance_path, "encryption.key")
    old_key = Path(key_file).read_text().strip()
    old_raw = _raw(app, "k1")
    result = app.test_cli_runner().invoke(args=["rotate-key"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 3 secret value(s)." in result.output
    new_key = Path(key_file).read_text().strip()
    assert new_key != old_key and "\n" not in new_key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert _raw(app, "k1") != old_raw
    with pytest.raises(SecretUnreadable):
        Cipher([old_key]).decrypt(_raw(app, "k1"))
    assert Cipher([new_key]).decrypt(_raw(app, "k1")) == "value-1"
    fresh = make_app()  # a restarted instance reads the new key file
    assert [_read(fresh, f"k{i}") for i in range(3)] == ["value-0", "value-1", "value-2"]


def test_rotate_key_with_environment_keys(make_app):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = make_app(ENCRYPTION_KEY=old)
    _store(app)
    rotating = make_app(ENCRYPTION_KEY=f"{new},{old}")  # the operator deploys "new,old" first
    result = rotating.test_cli_runner().invoke(args=["rotate-key"])
    assert result.exit_code == 0 and "remove the others" in result.output
    assert _read(make_app(ENCRYPTION_KEY=new)) == "s3cr3t-value"
    with pytest.raises(SecretUnreadable):
        _read(make_app(ENCRYPTION_KEY=old))


def test_wrong_key_is_a_clear_error(make_app):
    _store(make_app())
    with pytest.raises(SecretUnreadable, match="cannot be decrypted"):
        _read(make_app(ENCRYPTION_KEY=Fernet.generate_key().decode()))
