"""Administrator pages and the create-admin / bootstrap-admin / reset-password commands."""
import re

import sqlalchemy as sa

from portal.models import AdminUser, AuditEvent
from tests.fixtures.accounts import create_admin, login


def _one_time_password(response) -> str:
    return re.search(r'class="secret-once"><code>([^<]+)</code>', response.get_data(as_text=True)).group(1)


def test_create_shows_a_one_time_password_once(app, admin_client, db):
    response = admin_client.post("/admins/new", data={"username": "Carol", "role": "operator"})
    assert response.status_code == 200
    password = _one_time_password(response)
    carol = db.session.execute(sa.select(AdminUser).where(AdminUser.username == "carol")).scalar_one()
    assert carol.role == "operator" and carol.must_change_password
    assert password not in carol.password_hash and carol.password_hash.startswith("$argon2id$")
    assert password not in admin_client.get(f"/admins/{carol.id}").get_data(as_text=True)
    assert login(app.test_client(), "carol", password).status_code == 302


def test_create_validation_errors_at_the_field(admin_client):
    response = admin_client.post("/admins/new", data={"username": "bad name!", "role": "operator"})
    assert "Use 2 to 64 lower-case letters" in response.get_data(as_text=True)
    admin_client.post("/admins/new", data={"username": "dave", "role": "operator"})
    response = admin_client.post("/admins/new", data={"username": "DAVE", "role": "auditor"})
    assert "already exists" in response.get_data(as_text=True)
    response = admin_client.post("/admins/new", data={"username": "erin", "role": "root"})
    assert "Not a valid choice" in response.get_data(as_text=True)


def test_disable_and_enable(app, admin_client, db):
    bob_id = create_admin(app, "bob", "operator")
    admin_client.post(f"/admins/{bob_id}/disable")
    assert db.session.get(AdminUser, bob_id).active is False
    page = admin_client.get(f"/admins/{bob_id}").get_data(as_text=True)
    assert "disabled" in page
    admin_client.post(f"/admins/{bob_id}/enable")
    db.session.expire_all()
    assert db.session.get(AdminUser, bob_id).active is True
    assert login(app.test_client(), "bob").status_code == 302


def test_cannot_disable_oneself_or_the_last_admin(app, admin_client, db):
    me = db.session.execute(sa.select(AdminUser).where(AdminUser.username == "admin-user")).scalar_one()
    response = admin_client.post(f"/admins/{me.id}/disable", follow_redirects=True)
    assert "You cannot disable your own account." in response.get_data(as_text=True)
    assert db.session.get(AdminUser, me.id).active


def test_last_admin_cannot_be_demoted(app, db):
    first = create_admin(app, "first", "admin")
    second = create_admin(app, "second", "admin")
    client = app.test_client()
    login(client, "second")
    client.post(f"/admins/{first}/disable")
    # Now "second" is the only active admin: another admin would be needed to demote it.
    client2 = app.test_client()
    create_admin(app, "third", "operator")
    login(client2, "third")
    assert client2.post(f"/admins/{second}/role", data={"role": "auditor"}).status_code == 403
    response = client.post(f"/admins/{first}/enable", follow_redirects=True)
    assert response.status_code == 200
    response = client.post(f"/admins/{first}/role", data={"role": "auditor"}, follow_redirects=True)
    assert "Role changed to auditor" in response.get_data(as_text=True)


def test_reset_password_ends_sessions_and_forces_change(app, admin_client, db):
    bob_id = create_admin(app, "bob", "operator")
    bob = app.test_client()
    login(bob, "bob")
    response = admin_client.post(f"/admins/{bob_id}/reset-password")
    password = _one_time_password(response)
    assert bob.get("/").status_code == 302
    fresh = app.test_client()
    assert login(fresh, "bob", password).status_code == 302
    assert fresh.get("/").headers["Location"].endswith("/account/password")


def test_role_change_ends_sessions(app, admin_client, db):
    bob_id = create_admin(app, "bob", "operator")
    bob = app.test_client()
    login(bob, "bob")
    admin_client.post(f"/admins/{bob_id}/role", data={"role": "auditor"})
    assert db.session.get(AdminUser, bob_id).role == "auditor"
    assert bob.get("/").status_code == 302


def test_missing_admin_is_404(admin_client):
    assert admin_client.get("/admins/999999").status_code == 404
    assert admin_client.post("/admins/999999/disable").status_code == 404


def test_live_sessions_are_listed(app, admin_client, db):
    me = db.session.execute(sa.select(AdminUser).where(AdminUser.username == "admin-user")).scalar_one()
    page = admin_client.get(f"/admins/{me.id}")  # the browser that signed in: another User-Agent ends the session
    assert "Live sessions" in page.get_data(as_text=True)


def test_create_admin_command_reads_stdin(app, runner, db):
    result = runner.invoke(args=["create-admin", "--username", "ops", "--role", "operator"],
                           input="a long enough passphrase\n")
    assert result.exit_code == 0, result.output
    ops = db.session.execute(sa.select(AdminUser).where(AdminUser.username == "ops")).scalar_one()
    assert ops.role == "operator" and not ops.must_change_password
    assert login(app.test_client(), "ops", "a long enough passphrase").status_code == 302
    audit = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "admin.create")).scalar_one()
    assert audit.actor == "cli"


def test_create_admin_command_refuses_weak_and_duplicate(runner):
    result = runner.invoke(args=["create-admin", "--username", "ops"], input="short\n")
    assert result.exit_code != 0 and "Use at least 12 characters" in result.output
    runner.invoke(args=["create-admin", "--username", "ops"], input="a long enough passphrase\n")
    result = runner.invoke(args=["create-admin", "--username", "ops"], input="a long enough passphrase\n")
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(args=["create-admin", "--username", "nobody"], input="")
    assert result.exit_code != 0 and "No password on standard input" in result.output


def test_bootstrap_admin_only_once(runner):
    first = runner.invoke(args=["bootstrap-admin"])
    assert "One-time password" in first.output
    second = runner.invoke(args=["bootstrap-admin"])
    assert "nothing to do" in second.output and "One-time password" not in second.output


def test_reset_password_command(app, runner):
    create_admin(app, "alice")
    result = runner.invoke(args=["reset-password", "--username", "alice"], input="recovered passphrase!\n")
    assert result.exit_code == 0, result.output
    assert login(app.test_client(), "alice", "recovered passphrase!").status_code == 302
