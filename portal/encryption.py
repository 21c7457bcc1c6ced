"""Secrets at rest: columns of type EncryptedText are Fernet-encrypted with the instance key.

Keys come from ENCRYPTION_KEY (PORTAL_ENCRYPTION_KEY) or instance/encryption.key: one or more Fernet keys, newest
first. The newest encrypts; all of them decrypt, so `flask --app portal rotate-key` can re-encrypt row by row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app
from sqlalchemy.types import TypeDecorator


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted with any configured key (wrong or lost encryption key)."""


class Cipher:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("a stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()


def parse_keys(value: str) -> list[str]:
    return [k.strip() for k in value.replace("\n", ",").split(",") if k.strip()]


def init_app(app: Flask) -> None:
    app.extensions["portal.cipher"] = Cipher(parse_keys(app.config["ENCRYPTION_KEY"]))


def cipher() -> Cipher:
    return current_app.extensions["portal.cipher"]


class EncryptedText(TypeDecorator):
    """A text column stored encrypted. Reading it outside an app context is an error by design."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else cipher().encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else cipher().decrypt(value)


def encrypted_columns(metadata: sa.MetaData) -> list[tuple[sa.Table, sa.Column]]:
    """Every (table, column) that holds an encrypted secret, so rotation never misses one."""
    return [
        (table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, EncryptedText)
    ]


@dataclass
class RotationResult:
    new_key: str
    values: int
    key_file: Path | None
    generated: bool


def rotate_key(session, metadata: sa.MetaData, key_file: Path | None) -> RotationResult:
    """Re-encrypt every secret with a fresh key, in one transaction.

    With a key file, the new key is added in front first (so a crash leaves every value readable), then the old
    keys are dropped after the commit. With keys from the environment, a list "new,old" re-encrypts under the
    first; a single key is replaced by a generated one that the caller prints.
    """
    old_keys = parse_keys(current_app.config["ENCRYPTION_KEY"])
    if key_file is None and len(old_keys) > 1:
        # Environment keys "new,old,...": the operator deployed the new key first; re-encrypt under it.
        new_key, old_keys, generated = old_keys[0], old_keys[1:], False
    else:
        new_key, generated = Fernet.generate_key().decode(), True
    rotating = Cipher([new_key, *old_keys])
    if key_file is not None:
        _write_keys(key_file, [new_key, *old_keys])
    count = 0
    for table, column in encrypted_columns(metadata):
        raw = sa.type_coerce(column, sa.Text)
        pk = list(table.primary_key.columns)
        rows = session.execute(sa.select(*pk, raw.label("v")).where(column.isnot(None))).all()
        for row in rows:
            where = sa.and_(*[c == row[i] for i, c in enumerate(pk)])
            session.execute(
                table.update().where(where).values({column.name: sa.type_coerce(rotating.rotate(row.v), sa.Text)})
            )
            count += 1
    session.commit()
    if key_file is not None:
        _write_keys(key_file, [new_key])
    current_app.config["ENCRYPTION_KEY"] = new_key
    current_app.extensions["portal.cipher"] = Cipher([new_key])
    return RotationResult(new_key=new_key, values=count, key_file=key_file, generated=generated)


def _write_keys(path: Path, keys: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
    os.replace(tmp, path)
