"""Password hashing (argon2id) and the password policy, in one place for every door."""
from __future__ import annotations

import fcntl
import math
import os
import secrets
import time
from contextlib import contextmanager

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

# Passwords nobody should use for an administrator, whatever their length.
_COMMON = frozenset({
    "password1234", "123456789012", "administrator", "admin1234567", "qwertyuiopas", "passwordpassword",
    "changemechangeme", "letmeinletmein", "welcome12345", "wso2carbon123",
})
MAX_LENGTH = 256


class HashingBusy(Exception):
    """Every hashing slot of the host stayed taken for PASSWORD_HASH_WAIT seconds: answer 503, don't queue."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("The portal is busy checking other passwords.")
        self.retry_after = retry_after


# argon2id with m=64 MiB allocates (and touches) 64 MiB per hash, so the number of hashes running at once on a host,
# not the number of requests, decides how much memory sign-in can take under a flood. The slots are lock files in the
# instance folder, taken with flock(2) on a descriptor of their own: one bound for every gunicorn worker and thread
# of the host (a per-process semaphore would allow workers x slots hashes at once).
_POLL = 0.01


def _slot_files() -> list[str]:
    folder = current_app.config.get("PASSWORD_HASH_LOCK_DIR") or current_app.instance_path
    count = max(1, int(current_app.config["PASSWORD_HASH_CONCURRENCY"]))
    return [os.path.join(folder, f".password-hash-slot-{i}") for i in range(count)]


def _try_slot(path: str) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def hashing_slot():
    """Hold one of the host's PASSWORD_HASH_CONCURRENCY slots while hashing; HashingBusy when none frees up in
    PASSWORD_HASH_WAIT seconds, so a flood gets quick refusals instead of an unbounded queue of 64 MiB hashes (and
    of gunicorn threads waiting for them)."""
    wait = float(current_app.config["PASSWORD_HASH_WAIT"])
    deadline = time.monotonic() + wait
    paths = _slot_files()
    while True:
        fd = next((fd for path in paths if (fd := _try_slot(path)) is not None), None)
        if fd is not None:
            break
        if time.monotonic() >= deadline:
            raise HashingBusy(max(1, math.ceil(wait)))
        time.sleep(_POLL)
    try:
        yield
    finally:
        os.close(fd)  # closing the last descriptor of the open file releases the lock


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(time_cost=cfg["ARGON2_TIME_COST"], memory_cost=cfg["ARGON2_MEMORY_COST"],
                          parallelism=cfg["ARGON2_PARALLELISM"], type=Type.ID)


def hash_password(password: str) -> str:
    with hashing_slot():
        return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). Never raises for a wrong password; HashingBusy when no slot frees up."""
    hasher = _hasher()
    try:
        with hashing_slot():
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
