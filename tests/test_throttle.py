"""Sign-in throttling: per IP, per IP and username, per username; the real admin is not locked out."""
import pytest

from tests.conftest import create_admin, login


@pytest.fixture
def throttled_app(make_app):
    return make_app(RATELIMIT_ENABLED=True, LOGIN_LIMIT_PER_IP="20 per minute",
                    LOGIN_FAILURE_LIMIT_PER_IP_USER="3 per minute", LOGIN_FAILURE_LIMIT_PER_USER="6 per hour")


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
    app = make_app(RATELIMIT_ENABLED=True, LOGIN_LIMIT_PER_IP="5 per minute")
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
