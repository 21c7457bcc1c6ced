"""Scoped API clients (issue 13, item 3): every /v1 operation requires one scope, deny by default; a client may be
limited to the tenants it registered or to a tenant-id pattern (404 elsewhere, as if the tenant did not exist);
keys expire, record their last use cheaply, and rotate with an overlap. Each reproduction of the issue is a
regression test here: on the old code every one of these calls succeeded."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.access import PUBLIC, access_of
from portal.api.auth import scope_of
from portal.models import ApiClient, AuditEvent, Tenant
from portal.services.admin import api_clients
from tests.api_helpers import (
    Api,
    make_api,
    postgres_body,
    problem_of,
)
from tests.token_helpers import issue, tenant_body

# The table reviewers read: each /v1 operation and the one scope it requires.
EXPECTED_SCOPES = {
    ("POST", "/v1/tenant"): "register",
    ("GET", "/v1/tenant"): "read",
    ("GET", "/v1/tenant/<tenant_id>"): "read",
    ("PUT", "/v1/tenant/<tenant_id>"): "update",
    ("POST", "/v1/tenant/<tenant_id>/activate"): "update",
    ("POST", "/v1/tenant/<tenant_id>/deactivate"): "update",
    ("DELETE", "/v1/tenant/<tenant_id>"): "decommission",
    ("POST", "/v1/tenant/<tenant_id>/client-secret"): "secrets",
    ("GET", "/v1/tenant/<tenant_id>/keys"): "read",
    ("POST", "/v1/tenant/<tenant_id>/keys/rotate"): "keys",
    ("POST", "/v1/tenant/<tenant_id>/keys/<kid>/retire"): "keys",
    ("POST", "/v1/token/validate"): "validate",
}
EVERY_TENANT_CALL = [  # (method, path template, scope): every call that names one tenant
    ("GET", "/v1/tenant/{}", "read"), ("PUT", "/v1/tenant/{}", "update"),
    ("POST", "/v1/tenant/{}/activate", "update"), ("POST", "/v1/tenant/{}/deactivate", "update"),
    ("POST", "/v1/tenant/{}/client-secret", "secrets"), ("GET", "/v1/tenant/{}/keys", "read"),
    ("POST", "/v1/tenant/{}/keys/rotate", "keys"), ("POST", "/v1/tenant/{}/keys/somekid/retire", "keys"),
    ("DELETE", "/v1/tenant/{}", "decommission"),
]


def _v1_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield method, rule.rule, app.view_functions[rule.endpoint]


def _register(api: Api, tenant_id: str) -> None:
    response = api.post("/v1/tenant", json=postgres_body(tenant_id))
    assert response.status_code == 201, response.get_data(as_text=True)


def _call(api: Api, method: str, path: str):
    body = postgres_body(path.split("/")[3]) if method == "PUT" else ({} if method == "POST" else None)
    return api.open(path, method, json=body)


def _tenant(db, tenant_id: str) -> Tenant | None:
    db.session.expire_all()
    return db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == tenant_id.lower())).scalar_one_or_none()


# --- every route has exactly one scope, deny by default -------------------------------------------------------


def test_every_v1_route_declares_exactly_one_known_scope(app):
    found = {}
    for method, rule, view in _v1_routes(app):
        if access_of(view) == PUBLIC:
            assert rule == "/v1/openapi.json"
            continue
        assert scope_of(view) in api_clients.SCOPES, f"{method} {rule} declares no scope"
        found[(method, rule)] = scope_of(view)
    assert found == EXPECTED_SCOPES


def test_a_route_without_a_declared_scope_is_refused_to_every_client(app, contract):
    """Deny by default: the same view, its declaration removed, refuses even a client holding every scope."""
    caller = make_api(app, "all-scopes")
    view = app.view_functions["api.list_tenants"]
    saved = view._api_scope
    try:
        del view._api_scope
        body = problem_of(caller.get("/v1/tenant"), 403, contract)
        assert body["detail"] == "This operation declares no scope, so no API client may call it."
        assert "requiredScope" not in body
    finally:
        view._api_scope = saved
    assert caller.get("/v1/tenant").status_code == 200


# --- the reproductions: a read-only client ---------------------------------------------------------------------


def test_a_read_only_client_reads_but_cannot_rotate_deactivate_register_or_anything_else(app, db, contract):
    """Issue 13 item 3: any API client could rotate another client's tenant's secret, deactivate it, register."""
    owner = make_api(app, "owner")
    _register(owner, "victim")
    secret_before = _tenant(db, "victim").client_secret
    reader = make_api(app, "reader", scopes=("read",))
    assert reader.get("/v1/tenant").status_code == 200
    assert reader.get("/v1/tenant/victim").status_code == 200
    assert reader.get("/v1/tenant/victim/keys").status_code == 200
    for method, template, scope in EVERY_TENANT_CALL:
        if scope == "read":
            continue
        body = problem_of(_call(reader, method, template.format("victim")), 403, contract)
        assert body["title"] == "Forbidden" and body["requiredScope"] == scope
        assert body["detail"] == f"This API client lacks the scope '{scope}'."
    body = problem_of(reader.post("/v1/tenant", json=postgres_body("intruder")), 403, contract)
    assert body["requiredScope"] == "register"
    body = problem_of(reader.post("/v1/token/validate", json={"token": "x.y.z"}), 403, contract)
    assert body["requiredScope"] == "validate"
    tenant = _tenant(db, "victim")
    assert tenant.active and tenant.client_secret == secret_before and tenant.decommission_requested_at is None
    assert _tenant(db, "intruder") is None


def test_each_scope_opens_its_own_operations_only(app, db, contract):
    owner = make_api(app, "owner")
    _register(owner, "target")
    secrets_only = make_api(app, "secrets", scopes=("secrets",))
    response = secrets_only.post("/v1/tenant/target/client-secret")
    assert response.status_code == 200 and len(response.get_json()["clientSecret"]) >= 43
    assert problem_of(secrets_only.get("/v1/tenant/target"), 403, contract)["requiredScope"] == "read"
    assert problem_of(secrets_only.post("/v1/tenant/target/deactivate"), 403, contract)["requiredScope"] == "update"
    updater = make_api(app, "updater", scopes=("update",))
    assert updater.post("/v1/tenant/target/deactivate").status_code == 200
    assert not _tenant(db, "target").active
    keys = make_api(app, "keys", scopes=("keys",))
    assert keys.post("/v1/tenant/target/keys/rotate", json={}).status_code == 201
    registrar = make_api(app, "registrar", scopes=("register",))
    assert registrar.post("/v1/tenant", json=postgres_body("fresh")).status_code == 201
    assert problem_of(registrar.get("/v1/tenant/fresh"), 403, contract)["requiredScope"] == "read"
    retirer = make_api(app, "retirer", scopes=("decommission",))
    assert retirer.delete("/v1/tenant/fresh").status_code == 202


def test_the_scope_check_comes_after_authentication(app, client, contract):
    """No key, no scope talk: a caller without valid credentials learns nothing about scopes."""
    reader = make_api(app, "reader", scopes=("read",))
    body = problem_of(client.post("/v1/tenant/x/client-secret",
                                  headers={"X-API-AppId": reader.app_id, "X-API-Key": "wrong"}), 401, contract)
    assert "requiredScope" not in body


def test_scopes_are_validated_at_creation(app):
    with app.app_context():
        for scopes, message in (([], "at least one"), (["read", "admin"], "Unknown scope 'admin'")):
            with pytest.raises(api_clients.ValidationError) as caught:
                api_clients.create_client("x", api_clients.Actor.cli(), scopes=scopes)
            assert message in caught.value.errors["scopes"]
        client, _key = api_clients.create_client("default", api_clients.Actor.cli())
        assert client.scope_list == ["read"]  # the default: read only
        client, _key = api_clients.create_client("two", api_clients.Actor.cli(), scopes=["KEYS", "read", "keys"])
        assert client.scopes == "read keys"


# --- the reproductions: tenant limits ----------------------------------------------------------------------------


def test_a_client_limited_to_its_own_tenants_cannot_touch_another_clients_tenant(app, db, contract):
    """Issue 13 item 3: a client could act on another client's tenant. Limited, it gets 404 for it, exactly the
    answer for a tenant that does not exist, whatever its scopes."""
    other = make_api(app, "other")
    _register(other, "theirs")
    mine = make_api(app, "mine", tenant_scope="own")
    _register(mine, "ours")
    assert _tenant(db, "ours").registered_by_client_id is not None
    assert _tenant(db, "theirs").registered_by_client_id != _tenant(db, "ours").registered_by_client_id
    secret_before = _tenant(db, "theirs").client_secret
    for method, template, _scope in EVERY_TENANT_CALL:
        hidden = problem_of(_call(mine, method, template.format("theirs")), 404, contract)
        absent = problem_of(_call(mine, method, template.format("nosuch")), 404, contract)
        assert hidden["detail"] == absent["detail"].replace("nosuch", "theirs")
        assert hidden["title"] == absent["title"]
    tenant = _tenant(db, "theirs")
    assert tenant.active and tenant.client_secret == secret_before and tenant.decommission_requested_at is None
    assert mine.get("/v1/tenant/ours").status_code == 200
    assert mine.post("/v1/tenant/ours/client-secret").status_code == 200
    listed = mine.get("/v1/tenant").get_json()
    assert [item["tenantId"] for item in listed["items"]] == ["ours"] and listed["next"] is None
    assert {item["tenantId"] for item in other.get("/v1/tenant").get_json()["items"]} == {"ours", "theirs"}


def test_a_limited_clients_list_pages_over_its_own_tenants_only(app):
    other = make_api(app, "other")
    mine = make_api(app, "mine", tenant_scope="own")
    for number in range(5):
        _register(mine if number % 2 == 0 else other, f"t{number}")
    first = mine.get("/v1/tenant?limit=2").get_json()
    assert [item["tenantId"] for item in first["items"]] == ["t0", "t2"] and first["next"]
    second = mine.get(first["next"]).get_json()
    assert [item["tenantId"] for item in second["items"]] == ["t4"] and second["next"] is None


def test_validate_refuses_tokens_of_tenants_outside_the_limit(app):
    other = make_api(app, "other")
    other.post("/v1/tenant", json=tenant_body("tok-theirs"))
    token = issue(other, "tok-theirs")
    mine = make_api(app, "mine", scopes=("register", "validate"), tenant_scope="own")
    assert mine.post("/v1/tenant", json=tenant_body("tok-ours")).status_code == 201
    verdict = mine.post("/v1/token/validate", json={"token": token}).get_json()
    assert verdict["valid"] is False and verdict["reason"] == "unknown_tenant" and verdict["claims"] == {}
    assert other.post("/v1/token/validate", json={"token": token}).get_json()["valid"] is True
    assert mine.post("/v1/token/validate", json={"token": issue(mine, "tok-ours")}).get_json()["valid"] is True


def test_a_pattern_limited_client_sees_and_registers_matching_ids_only(app, db, contract):
    other = make_api(app, "other")
    for tenant_id in ("CI-one", "prod-one", "ci"):
        _register(other, tenant_id)
    ci = make_api(app, "ci", tenant_scope="pattern", tenant_pattern="ci-*")
    assert [item["tenantId"] for item in ci.get("/v1/tenant").get_json()["items"]] == ["CI-one"]
    assert ci.get("/v1/tenant/ci-ONE").status_code == 200  # ids compare ignoring case
    problem_of(ci.get("/v1/tenant/prod-one"), 404, contract)
    problem_of(ci.get("/v1/tenant/ci"), 404, contract)
    body = problem_of(ci.post("/v1/tenant", json=postgres_body("prod-two")), 403, contract)
    assert "ci-*" in body["detail"] and "tenantId" in body["errors"]
    assert _tenant(db, "prod-two") is None
    _register(ci, "ci-two")
    underscore = make_api(app, "underscore", tenant_scope="pattern", tenant_pattern="a_?")
    _register(other, "a_b")
    _register(other, "axb")  # '_' is literal, not SQL's any-character
    assert [item["tenantId"] for item in underscore.get("/v1/tenant").get_json()["items"]] == ["a_b"]


@pytest.mark.parametrize("limit", ["own", "pattern"])
def test_hostile_ids_reach_a_limited_client_as_400_or_404_never_500(app, limit, contract):
    caller = make_api(app, "limited", tenant_scope=limit, tenant_pattern="ci-*" if limit == "pattern" else None)
    assert caller.get("/v1/tenant/%00").status_code == 400
    assert caller.post("/v1/tenant/x%00/activate").status_code == 400
    for tenant_id in ("x" * 5000, "%E2%80%AE", "ci-%2A", "..%2F..%2Fv1%2Ftenant"):
        response = caller.get(f"/v1/tenant/{tenant_id}")
        assert response.status_code in (400, 404), (tenant_id, response.status_code)


@pytest.mark.parametrize("limit,pattern,field,message", [
    ("pattern", "", "tenant_pattern", "Use 1 to 64"),
    ("pattern", "*", "tenant_pattern", "wildcards alone"),
    ("pattern", "ci-[a-z]*", "tenant_pattern", "Use 1 to 64"),
    ("pattern", "x" * 65, "tenant_pattern", "Use 1 to 64"),
    ("own", "ci-*", "tenant_pattern", "only applies"),
    ("some", None, "tenant_scope", "Choose one of"),
])
def test_tenant_limits_are_validated(app, limit, pattern, field, message):
    with app.app_context(), pytest.raises(api_clients.ValidationError) as caught:
        api_clients.create_client("x", api_clients.Actor.cli(), tenant_scope=limit, tenant_pattern=pattern)
    assert message in caught.value.errors[field]


# --- expiry, last use, rotation --------------------------------------------------------------------------------


def _set(db, app_id: str, **values) -> None:
    db.session.execute(sa.update(ApiClient).where(ApiClient.app_id == app_id).values(**values))
    db.session.commit()


def test_an_expired_key_gets_401_with_a_clear_detail(app, db, client, contract):
    soon = datetime.now(UTC) + timedelta(days=1)
    caller = make_api(app, "expiring", expires_at=soon)
    assert caller.get("/v1/tenant").status_code == 200
    _set(db, caller.app_id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    body = problem_of(caller.get("/v1/tenant"), 401, contract)
    assert "key expired at" in body["detail"] and "rotate" in body["detail"]
    # Only the key's holder learns that: a wrong key gets the usual answer.
    wrong = problem_of(client.get("/v1/tenant", headers={"X-API-AppId": caller.app_id, "X-API-Key": "nope"}),
                       401, contract)
    assert "expired" not in wrong["detail"]
    with app.app_context(), pytest.raises(api_clients.ValidationError) as caught:
        api_clients.create_client("late", api_clients.Actor.cli(), expires_at=datetime.now(UTC))
    assert "future" in caught.value.errors["expires_at"]


def test_last_used_is_written_at_most_once_a_minute_with_one_query_per_call(app, db):
    caller = make_api(app, "busy")
    statements: list[str] = []
    with app.app_context():
        engine = api_clients.db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        assert caller.get("/v1/tenant").status_code == 200
        writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE API_CLIENT")]
        assert len(writes) == 1
        statements.clear()
        for _ in range(3):
            assert caller.get("/v1/tenant").status_code == 200
        assert not [s for s in statements if "UPDATE API_CLIENT" in s.upper()]
        reads = [s for s in statements if "FROM API_CLIENT" in s.upper()]
        assert len(reads) == 3  # one prepared query per call, nothing else about the client
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    _set(db, caller.app_id, last_used_at=datetime.now(UTC) - timedelta(minutes=2))
    caller.get("/v1/tenant")
    db.session.expire_all()
    used = db.session.execute(sa.select(ApiClient.last_used_at).where(ApiClient.app_id == caller.app_id)).scalar_one()
    assert datetime.now(UTC) - used < timedelta(seconds=30)


def test_rotation_keeps_the_old_key_for_the_overlap_then_401(app, db, contract):
    old = make_api(app, "rotating", scopes=("read", "register"))
    with app.app_context():
        client, key = api_clients.rotate_key(old.app_id, api_clients.Actor.cli(), overlap_hours=24)
        assert client.scope_list == ["read", "register"]
    new = Api(app, old.app_id, key)
    assert key != old.key
    assert old.get("/v1/tenant").status_code == 200 and new.get("/v1/tenant").status_code == 200
    stored = db.session.execute(sa.select(ApiClient).where(ApiClient.app_id == old.app_id)).scalar_one()
    assert timedelta(hours=23) < stored.previous_key_expires_at - datetime.now(UTC) <= timedelta(hours=24)
    assert key not in (stored.key_hash, stored.previous_key_hash)
    _set(db, old.app_id, previous_key_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    body = problem_of(old.get("/v1/tenant"), 401, contract)
    assert "replaced by a rotation" in body["detail"]
    assert new.get("/v1/tenant").status_code == 200
    event = db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "api_client.rotate")).scalar_one()
    assert event.actor == "cli" and event.object_id == old.app_id and key not in str(event.changes)
    assert "previous_key_until" in event.changes


def test_a_second_rotation_ends_the_first_overlap_and_zero_overlap_ends_it_at_once(app, contract):
    first = make_api(app, "twice")
    with app.app_context():
        _client, second_key = api_clients.rotate_key(first.app_id, api_clients.Actor.cli(), overlap_hours=24)
        _client, third_key = api_clients.rotate_key(first.app_id, api_clients.Actor.cli(), overlap_hours=0)
    problem_of(first.get("/v1/tenant"), 401, contract)
    problem_of(Api(app, first.app_id, second_key).get("/v1/tenant"), 401, contract)
    assert Api(app, first.app_id, third_key).get("/v1/tenant").status_code == 200


def test_rotation_never_extends_an_expiring_key_and_refuses_bad_input(app, db, contract):
    soon = datetime.now(UTC) + timedelta(hours=2)
    caller = make_api(app, "short-lived", expires_at=soon)
    with app.app_context():
        client, key = api_clients.rotate_key(caller.app_id, api_clients.Actor.cli(), overlap_hours=48,
                                             expires_at=soon + timedelta(days=30))
        assert abs((client.previous_key_expires_at - soon).total_seconds()) < 1
        for hours in (-1, 721, True, "24"):
            with pytest.raises(api_clients.ValidationError) as caught:
                api_clients.rotate_key(caller.app_id, api_clients.Actor.cli(), overlap_hours=hours)
            assert "overlap_hours" in caught.value.errors
        api_clients.revoke_client(caller.app_id, api_clients.Actor.cli())
        with pytest.raises(api_clients.ValidationError):
            api_clients.rotate_key(caller.app_id, api_clients.Actor.cli())
    problem_of(Api(app, caller.app_id, key).get("/v1/tenant"), 401, contract)


# --- the command line --------------------------------------------------------------------------------------------


def _credentials(output: str) -> tuple[str, str]:
    return (re.search(r"X-API-AppId: (\S+)", output).group(1), re.search(r"X-API-Key:\s+(\S+)", output).group(1))


def test_create_api_client_command_takes_scopes_limits_and_expiry(app, runner, db, contract):
    result = runner.invoke(args=["create-api-client", "--name", "Reader"])
    assert result.exit_code == 0, result.output
    assert "Scopes: read;" in result.output  # read only by default
    reader = Api(app, *_credentials(result.output))
    assert problem_of(reader.post("/v1/tenant", json=postgres_body("cli-x")), 403, contract)["requiredScope"] \
        == "register"
    result = runner.invoke(args=["create-api-client", "--name", "CI", "--scope", "read", "--scope", "register",
                                 "--tenants", "pattern", "--pattern", "ci-*", "--expires", "2999-01-31"])
    assert result.exit_code == 0, result.output
    ci = Api(app, *_credentials(result.output))
    assert ci.post("/v1/tenant", json=postgres_body("ci-cli")).status_code == 201
    problem_of(ci.post("/v1/tenant", json=postgres_body("prod-cli")), 403, contract)
    stored = db.session.execute(sa.select(ApiClient).where(ApiClient.app_id == ci.app_id)).scalar_one()
    assert stored.scopes == "read register" and stored.tenant_pattern == "ci-*"
    assert stored.expires_at == datetime(2999, 1, 31, tzinfo=UTC)
    for args, text in ((["--scope", "admin"], "Invalid value for '--scope'"),
                       (["--tenants", "pattern"], "tenant_pattern"),
                       (["--expires", "2001-01-01"], "future")):
        result = runner.invoke(args=["create-api-client", "--name", "Bad", *args])
        assert result.exit_code != 0 and text in result.output, result.output


def test_rotate_api_client_key_command(app, runner, contract):
    created = runner.invoke(args=["create-api-client", "--name", "Nightly", "--scope", "read"])
    old = Api(app, *_credentials(created.output))
    result = runner.invoke(args=["rotate-api-client-key", "--name", "Nightly", "--overlap-hours", "24"])
    assert result.exit_code == 0, result.output
    app_id, key = _credentials(result.output)
    assert app_id == old.app_id and key != old.key and "The old key works until" in result.output
    assert old.get("/v1/tenant").status_code == 200 and Api(app, app_id, key).get("/v1/tenant").status_code == 200
    result = runner.invoke(args=["rotate-api-client-key", "--app-id", app_id, "--overlap-hours", "0"])
    assert result.exit_code == 0 and "The old key no longer works." in result.output
    problem_of(Api(app, app_id, key).get("/v1/tenant"), 401, contract)
    for args, text in ((["--name", "Nobody"], "No active API client is named"),
                       ([], "Give --name or --app-id"),
                       (["--name", "Nightly", "--overlap-hours", "721"], "721")):
        result = runner.invoke(args=["rotate-api-client-key", *args])
        assert result.exit_code != 0 and text in result.output, result.output


# --- the upgrade ---------------------------------------------------------------------------------------------------


def test_migration_0008_keeps_existing_clients_working_and_downgrades(tmp_path):
    """Clients made before scopes were all-powerful: after the upgrade they hold every scope (nothing breaks),
    new ones default to read; the downgrade removes the columns again (SQLite here, PostgreSQL by hand)."""
    import flask_migrate

    from portal import create_app
    from portal.extensions import db as scratch_db
    from tests.fixtures.app import test_config

    app = create_app(test_config(f"sqlite:///{tmp_path / 'upgrade.db'}", tmp_path / "instance"))
    with app.app_context():
        flask_migrate.upgrade(revision="0007")
        with scratch_db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO api_client (app_id, name, key_hash, created_by, created_at) "
                                 "VALUES ('app_old', 'old', 'h', 'cli', '2026-01-01 00:00:00')"))
        flask_migrate.upgrade(revision="0008")
        with scratch_db.engine.begin() as conn:
            row = conn.execute(sa.text("SELECT scopes, tenant_scope FROM api_client")).one()
            assert row == (" ".join(api_clients.SCOPES), "all")
            conn.execute(sa.text("INSERT INTO api_client (app_id, name, key_hash, created_by, created_at) "
                                 "VALUES ('app_new', 'new', 'h', 'cli', '2026-01-01 00:00:00')"))
            assert conn.execute(sa.text("SELECT scopes FROM api_client WHERE app_id = 'app_new'")).scalar() == "read"
        flask_migrate.downgrade(revision="0007")
        with scratch_db.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("api_client")}
            assert "scopes" not in columns and "registered_by_client_id" not in {
                c["name"] for c in sa.inspect(conn).get_columns("tenant")}
        scratch_db.engine.dispose()
