"""Sign-in throttling: per IP, per IP and username, per username; the real admin is not locked out; a portal-wide
failure budget and a bound on concurrent password hashes under a flood from many addresses."""
import fcntl
import os

import pytest

from tests.fixtures.accounts import create_admin, login


@pytest.fixture
def throttled_app(make_app):
    return make_app(RATELIMIT_ENABLED=True, LOGIN_LIMIT_PER_IP="20 per minute",
                    LOGIN_FAILURE_LIMIT_PER_IP_USER="3 per minute", LOGIN_FAILURE_LIMIT_PER_USER="6 per hour",
                    LOGIN_FAILURE_LIMIT_GLOBAL="100 per minute")  # out of the way: tested on its own below


def _from(app, ip):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def test_failures_per_ip_and_username_are_slowed(throttled_app):
    create_admin(throttled_app, "alice")
    attacker = _from(throttled_app, "203.0.113.9")
    codes = [login(attacker, "alice", f"guess number {i}").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert "Too many sign-in attempts" in login(attacker, "alice", "guess again").get_data(as_text=True)
    # The same attacker IP can still try another username, and the real admin elsewhere is not affected.
    assert login(attacker, "mallory", "whatever pass").status_code == 401
    assert login(_from(throttled_app, "198.51.100.7"), "alice").status_code == 302


def test_successes_do_not_count_as_failures(throttled_app):
    create_admin(throttled_app, "alice")
    client = _from(throttled_app, "198.51.100.7")
    for _ in range(5):
        assert login(client, "alice").status_code == 302
        client.post("/logout")


def test_all_attempts_per_ip_are_capped(make_app):
    app = make_app(RATELIMIT_ENABLED=True, LOGIN_LIMIT_PER_IP="5 per minute",
                   LOGIN_FAILURE_LIMIT_GLOBAL="100 per minute")
    client = _from(app, "203.0.113.10")
    codes = [login(client, f"user{i}", "some password here").status_code for i in range(6)]
    assert codes[-1] == 429 and 429 not in codes[:5]


def test_distributed_guessing_cannot_lock_out_a_known_browser(throttled_app):
    create_admin(throttled_app, "alice")
    alice_browser = _from(throttled_app, "198.51.100.7")
    assert login(alice_browser, "alice").status_code == 302  # earns a device cookie
    alice_browser.post("/logout")
    # Guesses spread over many IPs exhaust the per-username budget...
    for i in range(6):
        assert login(_from(throttled_app, f"203.0.113.{i + 20}"), "alice", f"guess {i} long").status_code == 401
    assert login(_from(throttled_app, "203.0.113.99"), "alice", "one more guess").status_code == 429
    # ...but the browser alice used before still gets in.
    assert login(alice_browser, "alice").status_code == 302


# --- a flood from many addresses -----------------------------------------------------------------------------------


@pytest.fixture
def flood_app(make_app):
    """Per-address limits far away, a small portal-wide budget of failures."""
    return make_app(RATELIMIT_ENABLED=True, LOGIN_LIMIT_PER_IP="100 per minute",
                    LOGIN_FAILURE_LIMIT_PER_IP_USER="100 per minute", LOGIN_FAILURE_LIMIT_PER_USER="100 per hour",
                    LOGIN_FAILURE_LIMIT_GLOBAL="5 per minute")


def _hashes(app, monkeypatch) -> list[int]:
    """Counts argon2 verifications (the 64 MiB operation) by wrapping argon2-cffi's, not the portal's, code."""
    from argon2 import PasswordHasher

    calls: list[int] = []
    original = PasswordHasher.verify

    def counting(self, hash_, password):
        calls.append(1)
        return original(self, hash_, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


def test_global_failure_budget_refuses_before_hashing(flood_app, monkeypatch):
    """Failures spread over many addresses and usernames were never limited as a whole: each one cost a hash."""
    create_admin(flood_app, "alice")
    hashes = _hashes(flood_app, monkeypatch)
    codes = [login(_from(flood_app, f"203.0.113.{i}"), f"user{i}", "a wrong password").status_code
             for i in range(8)]
    assert codes == [401] * 5 + [429] * 3
    assert len(hashes) == 5  # the refused ones were never hashed
    refused = login(_from(flood_app, "198.51.100.7"), "alice")  # the right password, from a new browser
    text = refused.get_data(as_text=True)
    assert refused.status_code == 429 and "Too many failed sign-ins on this portal; try again in" in text
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert "A browser that has signed in as you before can still sign in." in text


def test_a_known_browser_still_signs_in_during_a_flood(flood_app):
    create_admin(flood_app, "alice")
    alice = _from(flood_app, "198.51.100.7")
    assert login(alice, "alice").status_code == 302  # earns a device cookie
    alice.post("/logout")
    for i in range(6):
        login(_from(flood_app, f"203.0.113.{i}"), "alice", "a wrong password")
    assert login(_from(flood_app, "198.51.100.8"), "alice").status_code == 429
    assert login(alice, "alice").status_code == 302
    # The device cookie is for alice only: it does not let its holder try other usernames.
    alice.post("/logout")
    assert login(alice, "bob", "a wrong password").status_code == 429


def _hold_slots(folder, count: int) -> list[int]:
    """What another worker process does while hashing: hold a slot's lock (flock on the slot file)."""
    held = []
    for i in range(count):
        fd = os.open(os.path.join(folder, f".password-hash-slot-{i}"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
    return held


@pytest.mark.parametrize("slots", [1, 2])
def test_hashing_is_bounded_per_host(make_app, tmp_path, slots):
    """Each argon2id check takes 64 MiB: with every slot of the host taken (by any worker), a sign-in waits
    PASSWORD_HASH_WAIT at most, then is told to come back (503 + Retry-After) instead of queueing another 64 MiB."""
    app = make_app(PASSWORD_HASH_CONCURRENCY=slots, PASSWORD_HASH_WAIT=0.2, PASSWORD_HASH_LOCK_DIR=str(tmp_path))
    create_admin(app, "alice")
    held = _hold_slots(tmp_path, slots)
    try:
        busy = login(app.test_client(), "alice")
    finally:
        os.close(held.pop())  # one slot frees up
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert "The portal is busy checking other sign-ins; try again in 1 s." in busy.get_data(as_text=True)
    assert login(app.test_client(), "alice").status_code == 302
    for fd in held:
        os.close(fd)
    assert oct(os.stat(tmp_path / ".password-hash-slot-0").st_mode & 0o777) == "0o600"


def test_hashing_elsewhere_is_503_too(tmp_path, admin_client):
    """Changing a password hashes it as well: no 500 when the host is busy."""
    app = admin_client.application
    app.config.update(PASSWORD_HASH_WAIT=0.1, PASSWORD_HASH_LOCK_DIR=str(tmp_path))
    held = _hold_slots(tmp_path, 1)
    try:
        response = admin_client.post("/account/password", data={
            "current_password": "x" * 12, "new_password": "a brand new passphrase",
            "confirm": "a brand new passphrase"})
    finally:
        os.close(held[0])
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
