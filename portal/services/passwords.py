"""Password hashing (argon2id) and the password policy, in one place for every door."""
from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

# Passwords nobody should use for an administrator, whatever their length.
_COMMON = frozenset({
    "password1234", "123456789012", "administrator", "admin1234567", "qwertyuiopas", "passwordpassword",
    "changemechangeme", "letmeinletmein", "welcome12345", "wso2carbon123",
})
MAX_LENGTH = 256


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(time_cost=cfg["ARGON2_TIME_COST"], memory_cost=cfg["ARGON2_MEMORY_COST"],
                          parallelism=cfg["ARGON2_PARALLELISM"], type=Type.ID)


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). Never raises for a wrong password."""
    hasher = _hasher()
    try:
        hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False, False
    return True, hasher.check_needs_rehash(password_hash)


def burn_time(password: str) -> None:
    """Spend what a real verification costs, so unknown usernames are not told apart by timing."""
    verify_password(_dummy_hash(), password)


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("portal.dummy_hash", {})
    key = (current_app.config["ARGON2_TIME_COST"], current_app.config["ARGON2_MEMORY_COST"])
    if key not in cache:
        cache[key] = hash_password(secrets.token_urlsafe(16))
    return cache[key]


def policy_error(password: str, username: str) -> str | None:
    """The reason a password is refused, or None. Length over complexity rules (NIST SP 800-63B, ASVS 6.2)."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        return f"Use at least {minimum} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if username and username.strip().lower() in password.lower():
        return "The password must not contain the username."
    if password.lower() in _COMMON or len(set(password)) < 4:
        return "This password is too easy to guess."
    return None


def generate_password() -> str:
    """A one-time password: 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)
