"""Sign-in, sign-out, server-side revocation, timeouts and the forced first password change."""
from datetime import timedelta

import sqlalchemy as sa

from portal.models import AdminSession, AdminUser, AuditEvent
from tests.fixtures.accounts import PASSWORD, create_admin, login


def _copy_cookies(src, dst):
    for cookie in src._cookies.values():
        dst.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)


def test_sign_in_and_out(app, client):
    create_admin(app, "alice")
    assert client.get("/").status_code == 302
    response = login(client, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and "alice" in page.get_data(as_text=True)
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_says_nothing_about_which_part(app, client):
    create_admin(app, "alice")
    bad_password = login(client, "alice", "not the password at all")
    unknown_user = login(client, "nobody", PASSWORD)
    assert bad_password.status_code == unknown_user.status_code == 401
    assert "Unknown username or wrong password." in bad_password.get_data(as_text=True)
    assert bad_password.get_data(as_text=True).count("wrong password") == unknown_user.get_data(as_text=True).count(
        "wrong password")


def test_logout_is_post_only(admin_client):
    assert admin_client.get("/logout").status_code == 405
    assert admin_client.get("/").status_code == 200


def test_sign_in_starts_a_fresh_session(app, client):
    create_admin(app, "alice")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker before sign-in"
    login(client, "alice")
    with client.session_transaction() as sess:
        assert "planted" not in sess


def test_copied_cookie_dies_at_logout(app, client):
    create_admin(app, "alice")
    login(client, "alice")
    thief = app.test_client()
    _copy_cookies(client, thief)
    assert thief.get("/").status_code == 200  # the copy works while the session lives...
    client.post("/logout")
    assert thief.get("/").status_code == 302  # ...and not after logout


def test_copied_cookie_dies_at_password_change(app, client):
    create_admin(app, "alice")
    login(client, "alice")
    thief = app.test_client()
    _copy_cookies(client, thief)
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a brand new passphrase", "confirm": "a brand new passphrase"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # this browser got a fresh session
    assert thief.get("/").status_code == 302


def test_copied_cookie_dies_when_account_disabled(app, admin_client):
    bob_id = create_admin(app, "bob", "operator")
    bob = app.test_client()
    login(bob, "bob")
    assert bob.get("/").status_code == 200
    assert admin_client.post(f"/admins/{bob_id}/disable").status_code == 302
    assert bob.get("/").status_code == 302
    assert login(app.test_client(), "bob").status_code == 401  # and cannot sign in again


def _age_session(app, **delta):
    with app.app_context():
        from portal.extensions import db
        for row in db.session.execute(sa.select(AdminSession)).scalars():
            row.last_seen_at -= timedelta(**delta.get("idle", {}))
            row.created_at -= timedelta(**delta.get("age", {}))
        db.session.commit()


def test_idle_timeout(app, client):
    create_admin(app, "alice")
    login(client, "alice")
    _age_session(app, idle={"minutes": 29})
    assert client.get("/").status_code == 200  # 29 minutes idle: still alive, and the request refreshes it
    _age_session(app, idle={"minutes": 31})
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    with app.app_context():
        from portal.extensions import db
        assert db.session.execute(sa.select(AdminSession.revoked_reason)).scalar_one() == "idle"


def test_absolute_timeout_even_when_active(app, client):
    create_admin(app, "alice")
    login(client, "alice")
    _age_session(app, age={"hours": 11, "minutes": 59})
    assert client.get("/").status_code == 200
    _age_session(app, age={"minutes": 2})
    assert client.get("/").status_code == 302
    follow = client.get("/login")
    assert "Your session has ended" in follow.get_data(as_text=True)


def test_one_time_password_forces_a_change(app, runner):
    result = runner.invoke(args=["bootstrap-admin"])
    password = [line.split()[-1] for line in result.output.splitlines() if "One-time password" in line][0]
    client = app.test_client()
    assert login(client, "admin", password).status_code == 302
    response = client.get("/admins/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")
    response = client.post("/account/password", data={
        "current_password": password, "new_password": "short", "confirm": "short"})
    assert "Use at least 12 characters." in response.get_data(as_text=True)
    response = client.post("/account/password", data={
        "current_password": password, "new_password": "my own long passphrase", "confirm": "my own long passphrase"})
    assert response.status_code == 302
    assert client.get("/admins/").status_code == 200


def test_change_password_errors_at_the_field(admin_client):
    response = admin_client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "another long passphrase", "confirm": "different"})
    assert "The two passwords differ." in response.get_data(as_text=True)
    response = admin_client.post("/account/password", data={
        "current_password": "wrong", "new_password": "admin-user and more", "confirm": "admin-user and more"})
    text = response.get_data(as_text=True)
    assert "This is not your current password." in text
    assert "The password must not contain the username." in text


def test_next_parameter_cannot_leave_the_site(app, client):
    create_admin(app, "alice")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = login(client, "alice", query_string={"next": target})
        assert response.headers["Location"] == "/", target
        client.post("/logout")
    response = login(client, "alice", query_string={"next": "/audit/?actor=bob"})
    assert response.headers["Location"] == "/audit/?actor=bob"


def test_sign_in_and_failure_are_audited_without_the_password(app, client, db):
    create_admin(app, "alice")
    login(client, "alice", "my guessed password")
    login(client, "alice")
    events = db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    actions = [e.action for e in events]
    assert actions[-2:] == ["auth.login_failed", "auth.login"]
    assert all("my guessed password" not in str(e.changes) for e in events)
    assert db.session.execute(sa.select(AdminUser.last_login_at)).scalar_one() is not None


# --- ?next= never breaks the sign-in ------------------------------------------------------------------------------

ODD_NEXT = ["/admins/\r\nSet-Cookie: planted=1", "/\r\n", "/\n", "\r\n/", "/%0d%0a", "/\t/evil.example",
            "/\x7f", "/\x85next-line", "/ spaced path", "/caf\u00e9", "/\u2028", "/" + "a" * 5000, "/[", "//[",
            "/?next=//evil.example", "javascript:alert(1)"]


def test_any_next_value_gives_a_redirect_after_sign_in(app, client, subtests):
    """CR/LF in `next` used to reach the Location header: a 500 after a successful sign-in."""
    create_admin(app, "alice")
    for target in ODD_NEXT:
        with subtests.test(target=target[:30]):
            response = login(client, "alice", query_string={"next": target})
            assert response.status_code == 302
            location = response.headers["Location"]
            assert location.startswith("/") and not location.startswith("//")
            assert "\r" not in location and "\n" not in location and "\t" not in location
            assert "evil.example" not in location.split("?")[0]
            assert client.get("/").status_code == 200
            client.post("/logout")
    # NUL is refused before anything happens, as on every address (input_guard); bytes that are not UTF-8 sign in.
    assert login(client, "alice", query_string={"next": "/\x00"}).status_code == 400
    response = client.post("/login?next=/%ff%fe%0d%0a", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and "\n" not in response.headers["Location"]


# --- sessions are bound to the browser that opened them -----------------------------------------------------------


def _revoked_reasons(app) -> list[str | None]:
    with app.app_context():
        from portal.extensions import db
        return list(db.session.execute(sa.select(AdminSession.revoked_reason).order_by(AdminSession.id)).scalars())


def test_a_copied_cookie_from_another_browser_ends_the_session(app, client):
    """Flask-Login's "strong" protection did nothing for permanent sessions: a copied cookie worked anywhere."""
    create_admin(app, "alice")
    ua = {"User-Agent": "Mozilla/5.0 (alice's browser)"}
    assert login(client, "alice", headers=ua).status_code == 302
    assert client.get("/", headers=ua).status_code == 200
    thief = app.test_client()
    _copy_cookies(client, thief)
    response = thief.get("/", headers={"User-Agent": "curl/8.5.0"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _revoked_reasons(app) == ["other_browser"]
    assert client.get("/", headers=ua).status_code == 302  # ended for the owner too: the cookie is known to leak


def test_network_binding_is_a_setting(make_app):
    app = make_app(SESSION_BIND_IPV4_PREFIX=24)
    create_admin(app, "alice")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert login(client, "alice").status_code == 302
    client.environ_base["REMOTE_ADDR"] = "198.51.100.200"  # same /24: a new DHCP lease, say
    assert client.get("/").status_code == 200
    client.environ_base["REMOTE_ADDR"] = "203.0.113.5"
    assert client.get("/").status_code == 302
    assert _revoked_reasons(app) == ["other_network"]


def test_addresses_may_change_by_default(app, client):
    create_admin(app, "alice")
    client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    login(client, "alice")
    client.environ_base["REMOTE_ADDR"] = "2001:db8::1"
    assert client.get("/").status_code == 200


# --- password change: throttled and audited ------------------------------------------------------------------------


def _change(client, current: str, new: str = "a brand new passphrase"):
    return client.post("/account/password", data={"current_password": current, "new_password": new,
                                                  "confirm": new})


def test_wrong_current_passwords_are_audited_without_the_secret(app, admin_client, db):
    response = _change(admin_client, "my first guess at it")
    assert response.status_code == 200 and "This is not your current password." in response.get_data(as_text=True)
    events = db.session.execute(sa.select(AuditEvent).where(
        AuditEvent.action == "auth.password_change_failed")).scalars().all()
    assert len(events) == 1 and events[0].actor == "admin-user"
    assert events[0].changes == {"reason": {"before": None, "after": "wrong current password"}}
    assert "my first guess" not in str(events[0].changes) and "brand new" not in str(events[0].changes)


def test_current_password_guessing_is_throttled_per_session(make_app, db):
    app = make_app(RATELIMIT_ENABLED=True, PASSWORD_CHANGE_FAILURE_LIMIT_PER_SESSION="3 per 15 minutes",
                   PASSWORD_CHANGE_FAILURE_LIMIT_PER_ADMIN="100 per hour")
    create_admin(app, "alice")
    client = app.test_client()
    login(client, "alice")
    codes = [_change(client, f"guess number {i}").status_code for i in range(3)]
    assert codes == [200, 200, 200]
    refused = _change(client, PASSWORD)  # even the right one: it is not checked any more
    assert refused.status_code == 429
    assert "Too many wrong current passwords. Try again in 15 minutes." in refused.get_data(as_text=True)
    reasons = [e.changes["reason"]["after"] for e in db.session.execute(
        sa.select(AuditEvent).where(AuditEvent.action == "auth.password_change_failed")
        .order_by(AuditEvent.id)).scalars()]
    assert reasons == ["wrong current password"] * 3 + ["throttled"]
    # A new sign-in is a new session: the owner who knows the password can still change it.
    other = app.test_client()
    login(other, "alice")
    assert _change(other, PASSWORD).status_code == 302


def test_current_password_guessing_is_throttled_per_admin_across_sessions(make_app):
    app = make_app(RATELIMIT_ENABLED=True, PASSWORD_CHANGE_FAILURE_LIMIT_PER_SESSION="10 per 15 minutes",
                   PASSWORD_CHANGE_FAILURE_LIMIT_PER_ADMIN="4 per hour")
    create_admin(app, "alice")
    create_admin(app, "bob")
    for i in range(2):
        session = app.test_client()
        login(session, "alice")
        assert [_change(session, f"guess {i} {j} long").status_code for j in range(2)] == [200, 200]
    last = app.test_client()
    login(last, "alice")
    assert _change(last, PASSWORD).status_code == 429
    bob = app.test_client()
    login(bob, "bob")
    assert _change(bob, PASSWORD).status_code == 302  # other administrators are not affected


def test_successful_change_is_not_slowed_by_earlier_typos(make_app, db):
    app = make_app(RATELIMIT_ENABLED=True, PASSWORD_CHANGE_FAILURE_LIMIT_PER_SESSION="3 per 15 minutes")
    create_admin(app, "alice")
    client = app.test_client()
    login(client, "alice")
    assert _change(client, "a typo in it").status_code == 200
    assert _change(client, PASSWORD).status_code == 302
    actions = [e.action for e in db.session.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars()]
    assert actions[-2:] == ["auth.password_change_failed", "admin.change_password"]
