"""Sign-in, sign-out, server-side revocation, timeouts and the forced first password change."""
from datetime import timedelta

import sqlalchemy as sa

from portal.models import AdminSession, AdminUser, AuditEvent
from portal.models.base import utcnow
from tests.conftest import PASSWORD, create_admin, login


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
