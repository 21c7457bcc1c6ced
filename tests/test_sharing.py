"""The sharing switch: one field that cannot hold two directions, per-direction settings with passwords kept
write-only, the auto-configure / skip-resident rule, the pre-flight, the confirmation when leaving a direction, the
generated configuration (parsed back) and the page with its diagram and trust legs."""
from __future__ import annotations

import tomllib

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import AuditEvent
from portal.models.sharing import DIRECTIONS, SharingSettings
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.errors import CheckFailed, NotFound, ValidationError
from portal.services.sharing import connections, service as sharing, sharing_toml, wso2_config
from simulators.apim import PERMISSION_MONITOR, ApimSimulator
from simulators.is7 import Is7Simulator

ACTOR = Actor(name="root-admin")
AWKWARD_USER = 'svc "sync", tenant\\ops'
AWKWARD_PASSWORD = 'p"a,s\\s\'w#rd'
PLAIN_PASSWORD = "Plain-Secret-4711"  # for "never shown" checks: escaping cannot hide it
APIM_URL = "https://apim.example.com:9443"


@pytest.fixture
def is7(pki):
    with Is7Simulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem,
                      client_ca_pem=pki.client_ca.cert_pem,
                      basic_users={"sync-admin": PLAIN_PASSWORD}) as sim:
        yield sim


def trust_is(app, pki):
    with app.app_context():
        certificates.upload_certificate("ca", pki.server_ca.cert_pem.encode(), ACTOR)


def apim_connection(app):
    with app.app_context():
        connections.save("apim", {"base_url": APIM_URL, "auth": "basic", "username": "admin", "password": "admin"},
                         ACTOR, check=False)


def apim_to_is(url="https://is.example.com:9443", **extra):
    return {"identity_server_base_url": url, "is_username": "sync-admin", "is_password": PLAIN_PASSWORD,
            "auto_configure_key_manager": True, "skip_create_resident_key_manager": True, **extra}


def is_to_apim(**extra):
    return {"apim_username": AWKWARD_USER, "apim_password": PLAIN_PASSWORD, **extra}


def audit_events(db, action="sharing.update"):
    return db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars().all()


# --- One field, three values -----------------------------------------------------------------------------------------


def test_sharing_is_off_until_set(app):
    with app.app_context():
        assert sharing.current().direction == "off"
        assert _db.session.get(SharingSettings, 1) is None


def test_the_direction_is_one_column_with_three_values():
    columns = [c.name for c in SharingSettings.__table__.columns]
    assert [c for c in columns if "direction" in c or c.startswith(("enable", "sync"))] == ["direction"]
    assert DIRECTIONS == ("off", "apim_to_is", "is_to_apim")


@pytest.mark.parametrize("value", ["both", "apim_to_is,is_to_apim", "APIM_TO_IS", ""])
def test_the_database_refuses_any_other_direction(app, value):
    with app.app_context():
        _db.session.add(SharingSettings(id=1, direction=value, apim_username="", identity_server_base_url="",
                                        is_username="", auto_configure_key_manager=False,
                                        skip_create_resident_key_manager=False, dotless_domains=False,
                                        updated_by="t"))
        # PostgreSQL refuses the too-long value before the CHECK (DataError); SQLite reaches the CHECK.
        with pytest.raises((sa.exc.IntegrityError, sa.exc.DataError)):
            _db.session.commit()
        _db.session.rollback()


def test_the_database_keeps_a_single_row(app):
    with app.app_context():
        sharing.set_direction("off", {}, ACTOR, confirm=False)
        _db.session.add(SharingSettings(id=2, direction="off", apim_username="", identity_server_base_url="",
                                        is_username="", auto_configure_key_manager=False,
                                        skip_create_resident_key_manager=False, dotless_domains=False,
                                        updated_by="t"))
        with pytest.raises(sa.exc.IntegrityError):
            _db.session.commit()
        _db.session.rollback()


@pytest.mark.parametrize("value", ["both", "apim_to_is+is_to_apim", None, ""])
def test_the_service_refuses_both_directions(app, value):
    with app.app_context():
        with pytest.raises(ValidationError) as info:
            sharing.set_direction(value, {**apim_to_is(), **is_to_apim()}, ACTOR, confirm=True, check=False)
        assert "one direction at a time" in info.value.errors["direction"]
        assert sharing.current().direction == "off"


# --- Per-direction settings ------------------------------------------------------------------------------------------


def test_auto_configure_forces_skip_resident_with_the_reason(app, db):
    with app.app_context():
        saved = sharing.set_direction("apim_to_is", apim_to_is(skip_create_resident_key_manager=False), ACTOR,
                                      confirm=False, check=False)
        assert saved.auto_configure_key_manager is True and saved.skip_create_resident_key_manager is True
        generated = sharing.render()
    assert sharing_toml.FORCED_SKIP_REASON in generated.notes
    assert tomllib.loads(generated.apim_toml)["apim"]["key_manager"] == {"skip_create_resident_key_manager": True}
    [event] = audit_events(db)
    assert event.changes["forced"]["after"] == [sharing_toml.FORCED_SKIP_REASON]
    assert event.changes["preflight"]["after"] == "skipped"


def test_the_database_refuses_auto_configure_without_skip(app):
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=False, check=False)
        row = _db.session.get(SharingSettings, 1)
        row.skip_create_resident_key_manager = False
        with pytest.raises(sa.exc.IntegrityError):
            _db.session.commit()
        _db.session.rollback()


def test_without_auto_configure_skip_is_the_admins_choice(app):
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(auto_configure_key_manager=False,
                                                      skip_create_resident_key_manager=False),
                              ACTOR, confirm=False, check=False)
        generated = sharing.render()
        parsed = tomllib.loads(generated.apim_toml)
        assert "key_manager" not in parsed["apim"]
        assert parsed["apim"]["tenant_sharing"][0]["properties"]["auto_configure_key_manager"] is False
        assert sharing_toml.FORCED_SKIP_REASON not in generated.notes
        sharing.set_direction("apim_to_is", apim_to_is(auto_configure_key_manager=False), ACTOR, confirm=False,
                              check=False)
        assert tomllib.loads(sharing.render().apim_toml)["apim"]["key_manager"] == {
            "skip_create_resident_key_manager": True}


@pytest.mark.parametrize("changes,field,message", [
    ({"identity_server_base_url": "http://is:9443"}, "identity_server_base_url", "https://"),
    ({"identity_server_base_url": ""}, "identity_server_base_url", "Enter IS 7's base URL"),
    ({"is_username": ""}, "is_username", "Enter the IS 7 user"),
    ({"is_password": ""}, "is_password", "Enter the password"),
    ({"is_username": "x" * 256}, "is_username", "longer than 255"),
])
def test_apim_to_is_settings_are_validated(app, changes, field, message):
    with app.app_context(), pytest.raises(ValidationError) as info:
        sharing.set_direction("apim_to_is", apim_to_is(**changes), ACTOR, confirm=False, check=False)
    assert message in info.value.errors[field]


def test_is_to_apim_needs_the_api_manager_connection_and_a_user(app):
    with app.app_context(), pytest.raises(ValidationError) as info:
        sharing.set_direction("is_to_apim", is_to_apim(apim_username=""), ACTOR, confirm=False, check=False)
    assert "API Manager connection first" in info.value.errors["direction"]
    assert "Enter the API Manager user" in info.value.errors["apim_username"]


def test_passwords_are_encrypted_kept_when_blank_and_redacted(app, db):
    apim_connection(app)
    with app.app_context():
        sharing.set_direction("is_to_apim", is_to_apim(), ACTOR, confirm=False, check=False)
        sharing.set_direction("is_to_apim", is_to_apim(apim_password=""), ACTOR, confirm=False, check=False)
        assert sharing.current().apim_password == PLAIN_PASSWORD
        view = sharing.view()
        assert view["apim_password_set"] is True and PLAIN_PASSWORD not in str(view)
    raw = db.session.execute(sa.text("SELECT apim_password FROM sharing_settings")).scalar_one()
    assert PLAIN_PASSWORD not in raw
    first, second = audit_events(db)
    assert first.changes["apim_password"] == {"before": None, "after": "[redacted]"}
    assert "apim_password" not in second.changes
    assert all(PLAIN_PASSWORD not in str(e.changes) for e in audit_events(db))


def test_the_other_directions_settings_are_kept(app):
    apim_connection(app)
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=False, check=False)
        sharing.set_direction("is_to_apim", is_to_apim(), ACTOR, confirm=True, check=False)
        stored = sharing.current()
        assert stored.direction == "is_to_apim"
        assert stored.is_username == "sync-admin" and stored.is_password == PLAIN_PASSWORD


# --- Pre-flight -------------------------------------------------------------------------------------------------------


def test_apim_to_is_preflight_signs_in_to_is(app, db, is7, pki):
    trust_is(app, pki)
    with app.app_context():
        saved = sharing.set_direction("apim_to_is", apim_to_is(is7.base_url), ACTOR, confirm=False)
        assert saved.direction == "apim_to_is"
    call = is7.requests[-1]
    assert call.basic_user == "sync-admin" and call.path == "/api/server/v1/tenants"
    assert "preflight" not in audit_events(db)[0].changes


def test_a_failed_preflight_refuses_and_names_the_field(app, is7, pki):
    trust_is(app, pki)
    with app.app_context():
        with pytest.raises(CheckFailed) as info:
            sharing.set_direction("apim_to_is", apim_to_is(is7.base_url, is_password="wrong"), ACTOR, confirm=False)
        assert "401" in info.value.result.summary and "is_password" in info.value.errors
        assert any("Checked from the portal" in d for d in info.value.result.details)
        assert sharing.current().direction == "off"
    stopped = is7.base_url
    is7.stop()
    with app.app_context():
        with pytest.raises(CheckFailed) as info:
            sharing.set_direction("apim_to_is", apim_to_is(stopped), ACTOR, confirm=False)
        assert "identity_server_base_url" in info.value.errors
        saved = sharing.set_direction("apim_to_is", apim_to_is(stopped), ACTOR, confirm=False, check=False)
        assert saved.direction == "apim_to_is"


def test_the_preflight_needs_trust_in_is(app, is7):
    with app.app_context(), pytest.raises(CheckFailed) as info:
        sharing.set_direction("apim_to_is", apim_to_is(is7.base_url), ACTOR, confirm=False)
    assert "trusts no certificate for IS 7" in info.value.result.summary


@pytest.fixture
def apim(app, pki):
    """API Manager, and the portal's connection to it (trusting the simulators' CA)."""
    with ApimSimulator(server_cert_pem=pki.server.cert_pem, server_key_pem=pki.server.key_pem) as sim:
        sim.add_user("tenant-sync", PLAIN_PASSWORD)
        sim.add_user("watcher", PLAIN_PASSWORD, permissions=(PERMISSION_MONITOR,))
        trust_is(app, pki)
        with app.app_context():
            connections.save("apim", {"base_url": sim.base_url, "username": "admin", "password": "admin"}, ACTOR)
        yield sim


def test_is_to_apim_preflight_posts_a_no_op_event_as_the_listener_user(app, apim):
    with app.app_context():
        saved = sharing.set_direction("is_to_apim", is_to_apim(apim_username="tenant-sync"), ACTOR, confirm=False)
        assert saved.direction == "is_to_apim"
    call = apim.requests[-1]
    assert (call.path, call.status, call.basic_user) == ("/internal/data/v1/notify", 200, "tenant-sync")
    assert call.headers["x-wso2-key-manager"] == "TENANT_MANAGEMENT"
    assert apim.tenant(sharing.PROBE_DOMAIN) is None and apim.events == []


@pytest.mark.parametrize("user,password,field,message", [
    ("tenant-sync", "wrong", "apim_password", "Invalid Credentials"),
    ("watcher", PLAIN_PASSWORD, "apim_username", "modify-tenant permission"),
])
def test_is_to_apim_preflight_refuses_what_the_listener_would_hit(app, apim, user, password, field, message):
    with app.app_context():
        with pytest.raises(CheckFailed) as info:
            sharing.set_direction("is_to_apim", is_to_apim(apim_username=user, apim_password=password), ACTOR,
                                  confirm=False)
        assert message in info.value.errors[field]
        assert sharing.current().direction == "off"


def test_is_to_apim_preflight_when_api_manager_is_down(app, apim):
    apim.stop()
    with app.app_context(), pytest.raises(CheckFailed) as info:
        sharing.set_direction("is_to_apim", is_to_apim(apim_username="tenant-sync"), ACTOR, confirm=False)
    assert "refused" in info.value.errors["direction"]


# --- Switching --------------------------------------------------------------------------------------------------------


def test_leaving_a_direction_needs_confirmation_and_shows_what_to_remove(app, db):
    apim_connection(app)
    with app.app_context():
        sharing.set_direction("is_to_apim", is_to_apim(), ACTOR, confirm=False, check=False)  # from off: no confirm
        with pytest.raises(sharing.ConfirmationRequired) as info:
            sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=False, check=False)
        assert (info.value.current, info.value.target) == ("is_to_apim", "apim_to_is")
        [listener] = info.value.generated.removals_for("is")
        assert listener.whole_entry and "org.wso2.carbon.identity.mgt.listener.TenantSyncListener" in listener.text()
        # API Manager → IS 7 writes every sharing key, so none is to be removed from that entry.
        assert [r.table for r in info.value.generated.removals_for("apim")] == ["apim.key_manager"]
        assert "confirm" in info.value.errors
        assert sharing.current().direction == "is_to_apim"
        sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=True, check=False)
        with pytest.raises(sharing.ConfirmationRequired) as info:
            sharing.set_direction("off", {}, ACTOR, confirm=False)
        removals = info.value.generated.removals_for("apim")
        assert [(r.table, r.keys) for r in removals] == [
            ("apim.tenant_sharing.properties", wso2_config.SHARING_PROPERTIES),
            ("apim.key_manager", ("skip_create_resident_key_manager",))]
        sharing.set_direction("off", {}, ACTOR, confirm=True)
        assert sharing.current().direction == "off"
    assert [e.changes["direction"]["after"] for e in audit_events(db)] == ["is_to_apim", "apim_to_is", "off"]


def test_saving_the_same_direction_needs_no_confirmation(app):
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=False, check=False)
        sharing.set_direction("apim_to_is", apim_to_is(is_username="other"), ACTOR, confirm=False, check=False)
        assert sharing.current().is_username == "other"


# --- Generated configuration ------------------------------------------------------------------------------------------


def test_is_to_apim_generates_the_listener_with_the_notify_endpoint(app):
    apim_connection(app)
    with app.app_context():
        sharing.set_direction("is_to_apim", is_to_apim(apim_password=AWKWARD_PASSWORD), ACTOR, confirm=False,
                              check=False)
        generated = sharing.render()
        clear = sharing.render(include_passwords=True)
    [listener] = tomllib.loads(generated.is_toml)["event_listener"]
    assert listener["properties"] == {
        "notification_endpoint": f"{APIM_URL}/internal/data/v1/notify", "username": AWKWARD_USER,
        "password": "$secret{tenant_sync_apim_password}", "header.X-WSO2-KEY-MANAGER": "TENANT_MANAGEMENT"}
    assert "p\\\"a,s" not in generated.is_toml + generated.apim_toml  # TOML-escaped
    assert tomllib.loads(clear.is_toml)["event_listener"][0]["properties"]["password"] == AWKWARD_PASSWORD
    assert generated.apim_toml == "" and generated.remove_from_is == []  # auto-configure off: nothing for API Manager
    assert [r.keys for r in generated.removals_for("apim")] == [wso2_config.SHARING_PROPERTIES,
                                                                ("skip_create_resident_key_manager",)]
    assert sharing_toml.APIM_PERMISSION_NOTE in generated.notes


def test_apim_to_is_generates_tenant_sharing_with_awkward_values(app):
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(is_username=AWKWARD_USER, is_password=AWKWARD_PASSWORD), ACTOR,
                              confirm=False, check=False)
        clear = sharing.render(include_passwords=True)
        generated = sharing.render()
    parsed = tomllib.loads(clear.apim_toml)
    assert parsed["apim"]["tenant_sharing"] == [{"type": "WSO2-IS-7", "properties": {
        "enable_tenant_sync": True, "username": AWKWARD_USER, "password": AWKWARD_PASSWORD,
        "identity_server_base_url": "https://is.example.com:9443", "auto_configure_key_manager": True}}]
    assert parsed["apim"]["key_manager"] == {"skip_create_resident_key_manager": True}
    assert tomllib.loads(generated.apim_toml)["apim"]["tenant_sharing"][0]["properties"]["password"] == \
        "$secret{tenant_sharing_is_password}"
    assert generated.is_toml == "" and [r.whole_entry for r in generated.removals_for("is")] == [True]
    assert sharing_toml.SKIP_LOCATION_NOTE in generated.notes


def test_off_removes_both_blocks_and_adds_nothing(app):
    with app.app_context():
        generated = sharing.render("off")
    assert generated.is_toml == "" and generated.apim_toml == ""
    assert [r.whole_entry for r in generated.removals_for("is")] == [True]
    assert [r.keys for r in generated.removals_for("apim")] == [wso2_config.SHARING_PROPERTIES,
                                                                ("skip_create_resident_key_manager",)]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_dotless_domains_adds_public_cloud_setup_in_every_direction(make_app, direction):
    app = make_app(TENANT_DOTLESS_DOMAINS=False)
    with app.app_context():
        sharing.set_direction("off", {"dotless_domains": True}, ACTOR, confirm=False)
        generated = sharing.render(direction)
    assert tomllib.loads(generated.apim_toml)["multi_tenancy"] == {"stratos": {"public_cloud_setup": False}}
    assert any("TENANT_DOTLESS_DOMAINS" in note for note in generated.notes)


def test_render_of_an_unknown_direction_is_not_found(app):
    with app.app_context(), pytest.raises(NotFound):
        sharing.render("both")


def test_a_download_with_passwords_is_audited(app, db):
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=False, check=False)
        filename, text = sharing.download("apim", None, ACTOR)
        assert filename == "apim-deployment-tenant-sharing.toml" and PLAIN_PASSWORD not in text
        assert audit_events(db, "sharing.config_export") == []
        _, clear = sharing.download("apim", "apim_to_is", ACTOR, include_passwords=True)
        assert tomllib.loads(clear)["apim"]["tenant_sharing"][0]["properties"]["password"] == PLAIN_PASSWORD
        _, empty = sharing.download("is", None, ACTOR)
        assert tomllib.loads(empty) == {}
    [event] = audit_events(db, "sharing.config_export")
    assert event.changes["passwords"]["after"] == "included" and PLAIN_PASSWORD not in str(event.changes)


# --- API Manager's key manager in every direction (fidelity findings #3) -------------------------------------------

IS_URL = "https://is.example.com:9443"
KM_SETTINGS = [(True, True), (True, False), (False, True), (False, False)]  # (auto, skip) as entered


def _expected_apim(direction: str, auto: bool, skip: bool, is_user: str = "sync-admin") -> dict:
    """API Manager's generated TOML, parsed, for a direction and the stored (auto, skip)."""
    apim: dict = {}
    if direction == "apim_to_is":
        apim["tenant_sharing"] = [{"type": "WSO2-IS-7", "properties": {
            "enable_tenant_sync": True, "username": is_user, "password": "$secret{tenant_sharing_is_password}",
            "identity_server_base_url": IS_URL, "auto_configure_key_manager": auto}}]
    elif direction == "is_to_apim" and auto:
        apim["tenant_sharing"] = [{"type": "WSO2-IS-7", "properties": {
            "enable_tenant_sync": False, "identity_server_base_url": IS_URL, "auto_configure_key_manager": True}}]
    if direction != "off" and skip:
        apim["key_manager"] = {"skip_create_resident_key_manager": True}
    return {"apim": apim} if apim else {}


@pytest.mark.parametrize("entered", KM_SETTINGS)
@pytest.mark.parametrize("direction", ["apim_to_is", "is_to_apim"])
def test_key_manager_settings_are_saved_and_generated_in_both_directions(app, direction, entered):
    apim_connection(app)
    auto, skip = entered[0], entered[0] or entered[1]  # auto-configure forces skip
    settings = {**apim_to_is(), **is_to_apim(), "auto_configure_key_manager": entered[0],
                "skip_create_resident_key_manager": entered[1]}
    with app.app_context():
        saved = sharing.set_direction(direction, settings, ACTOR, confirm=False, check=False)
        assert (saved.auto_configure_key_manager, saved.skip_create_resident_key_manager) == (auto, skip)
        assert saved.identity_server_base_url == IS_URL
        rendered = {target: sharing.render(target) for target in DIRECTIONS}
    is_user = "sync-admin" if direction == "apim_to_is" else "<is-user>"  # saved with API Manager → IS 7 only
    for target, generated in rendered.items():
        assert tomllib.loads(generated.apim_toml) == _expected_apim(target, auto, skip, is_user), target
        assert bool(generated.is_toml) == (target == "is_to_apim")
        if target == "is_to_apim":
            assert tomllib.loads(generated.is_toml)["event_listener"][0]["id"] == "tenant_creation"
        # Removals: the keys this target does not write, never a whole shared table.
        written = _expected_apim(target, auto, skip).get("apim", {})
        kept = tuple((written.get("tenant_sharing") or [{}])[0].get("properties", {}))
        expected = []
        if set(wso2_config.SHARING_PROPERTIES) - set(kept):
            expected.append(("apim.tenant_sharing.properties",
                             tuple(k for k in wso2_config.SHARING_PROPERTIES if k not in kept)))
        if "key_manager" not in written:
            expected.append(("apim.key_manager", ("skip_create_resident_key_manager",)))
        assert [(r.table, r.keys) for r in generated.removals_for("apim")] == expected, target
        assert all(not r.whole_entry for r in generated.removals_for("apim"))
        assert [r.whole_entry for r in generated.removals_for("is")] == ([] if target == "is_to_apim" else [True])
    notes = rendered["is_to_apim"].notes
    assert (sharing_toml.IS_TO_APIM_KEY_MANAGER_NOTE in notes) == auto
    assert (sharing_toml.FORCED_SKIP_REASON in notes) == auto
    assert (sharing_toml.SKIP_ALONE_NOTE in notes) == (skip and not auto)
    assert (sharing_toml.SKIP_LOCATION_NOTE in notes) == skip


def test_is_to_apim_with_auto_configure_needs_the_is_url(app):
    apim_connection(app)
    with app.app_context():
        with pytest.raises(ValidationError) as info:
            sharing.set_direction("is_to_apim", is_to_apim(auto_configure_key_manager="y"), ACTOR, confirm=False,
                                  check=False)
        assert "auto-configured key manager's endpoints" in info.value.errors["identity_server_base_url"]
        with pytest.raises(ValidationError) as info:
            sharing.set_direction("is_to_apim", is_to_apim(identity_server_base_url="http://is"), ACTOR,
                                  confirm=False, check=False)
        assert "https://" in info.value.errors["identity_server_base_url"]
        saved = sharing.set_direction("is_to_apim", is_to_apim(), ACTOR, confirm=False, check=False)
        assert not saved.auto_configure_key_manager and saved.identity_server_base_url == ""


def test_is_to_apim_key_manager_config_feeds_a_real_toml_with_other_keys(app):
    """The generated API Manager fragment, merged the way the notes say (the key into the existing
    [apim.key_manager]), parses with the product's own keys intact."""
    apim_connection(app)
    with app.app_context():
        sharing.set_direction("is_to_apim", is_to_apim(identity_server_base_url=IS_URL,
                                                       auto_configure_key_manager="y"), ACTOR, confirm=False,
                              check=False)
        generated = sharing.render()
    key_line = "skip_create_resident_key_manager = true\n"
    existing = '[apim.key_manager]\nservice_url = "https://km:9443/services/"\n'
    assert f"[apim.key_manager]\n{key_line}" in generated.apim_toml
    rest = generated.apim_toml.replace(f"[apim.key_manager]\n{key_line}", "")
    merged = tomllib.loads(existing + key_line + "\n" + rest)
    assert merged["apim"]["key_manager"] == {"service_url": "https://km:9443/services/",
                                             "skip_create_resident_key_manager": True}
    assert merged["apim"]["tenant_sharing"][0]["properties"]["enable_tenant_sync"] is False
    assert sharing_toml.EDIT_ENTRY_NOTE in generated.notes


def test_key_manager_expectation_follows_direction_and_auto_configure(app):
    apim_connection(app)
    with app.app_context():
        assert not sharing.key_manager_expectation().expected  # off
        sharing.set_direction("is_to_apim", is_to_apim(identity_server_base_url=IS_URL,
                                                       auto_configure_key_manager="y"), ACTOR, confirm=False,
                              check=False)
        expectation = sharing.key_manager_expectation()
        assert expectation.expected and expectation.identity_server_base_url == IS_URL
        sharing.set_direction("is_to_apim", is_to_apim(), ACTOR, confirm=False, check=False)
        assert "auto_configure_key_manager is off" in sharing.key_manager_expectation().reason


def test_no_text_tells_the_administrator_to_delete_a_shared_table(app, admin_client):
    apim_connection(app)
    with app.app_context():
        sharing.set_direction("is_to_apim", is_to_apim(identity_server_base_url=IS_URL,
                                                       auto_configure_key_manager="y"), ACTOR, confirm=False,
                              check=False)
    response = admin_client.post("/sharing/", data={"direction": "off", "skip_check": "y"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "In [apim.tenant_sharing.properties] of the [[apim.tenant_sharing]] entry" in page.replace("&#34;", '"')
    assert "In [apim.key_manager]: remove skip_create_resident_key_manager" in page
    assert "Keep the table and its other keys." in page
    lowered = page.lower()
    for phrase in ("remove the block", "delete the block", "remove the whole", "until its block"):
        assert phrase not in lowered


# --- Trust legs -------------------------------------------------------------------------------------------------------


def test_trust_legs_say_what_the_portal_holds(app, pki):
    with app.app_context():
        legs = {leg.key: leg for leg in sharing.trust_legs("apim_to_is")}
        assert legs["portal-is"].state == "missing" and legs["apim-is"].state == "missing"
        assert legs["apim-is"].active and not legs["is-apim"].active
    trust_is(app, pki)
    with app.app_context():
        certificates.upload_certificate("client", pki.client.cert_pem.encode(), ACTOR,
                                        key_data=pki.client.key_pem.encode())
        legs = {leg.key: leg for leg in sharing.trust_legs("is_to_apim")}
    assert legs["portal-is"].state == "ready" and legs["portal-is-client"].state == "ready"
    assert legs["apim-is"].state == "ready" and "cannot see" in legs["apim-is"].unknown
    assert legs["is-apim"].state == "ready"  # the CA is in IS 7's truststore download too
    assert legs["is-apim"].active and legs["portal-apim"].state == "ready"


# --- Pages ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "operator", "auditor"])
def test_every_role_reads_the_page(signed_in, role):
    response = signed_in(role).get("/sharing/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'class="sharing-diagram sharing-off"' in page and "TLS trust legs" in page
    assert ("Only administrators can change sharing." in page) == (role != "admin")


def test_the_page_draws_the_arrow_of_the_direction(app, admin_client):
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=False, check=False)
    page = admin_client.get("/sharing/").get_data(as_text=True)
    assert 'class="sharing-diagram sharing-apim_to_is"' in page and "API Manager pushes tenants to IS 7" in page
    assert "[[apim.tenant_sharing]]" in page and sharing_toml.FORCED_SKIP_REASON in page
    assert PLAIN_PASSWORD not in page and "style=" not in page and "<script>" not in page


def test_admin_switches_with_confirmation_on_the_page(app, admin_client):
    form = {"direction": "apim_to_is", **apim_to_is(), "skip_check": "y"}
    assert admin_client.post("/sharing/", data=form).status_code == 302
    response = admin_client.post("/sharing/", data={"direction": "off", "skip_check": "y"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Remove from API Manager&#39;s deployment.toml" in page and "I have removed" in page
    response = admin_client.post("/sharing/", data={"direction": "off", "confirm": "y"})
    assert response.status_code == 302
    with app.app_context():
        assert sharing.current().direction == "off"


def test_a_failed_preflight_on_the_page_offers_to_save_without_it(app, admin_client, is7, pki):
    trust_is(app, pki)
    form = {"direction": "apim_to_is", **apim_to_is(is7.base_url, is_password="bad")}
    response = admin_client.post("/sharing/", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "The pre-flight check failed: nothing was saved" in page and "Save without the pre-flight check" in page
    assert admin_client.post("/sharing/", data={**form, "skip_check": "y"}).status_code == 302


def test_downloads_are_text_attachments(app, admin_client, auditor_client):
    with app.app_context():
        sharing.set_direction("apim_to_is", apim_to_is(), ACTOR, confirm=False, check=False)
    response = auditor_client.get("/sharing/config/apim")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.headers["Content-Disposition"] == 'attachment; filename="apim-deployment-tenant-sharing.toml"'
    assert tomllib.loads(response.get_data(as_text=True))["apim"]["tenant_sharing"][0]["type"] == "WSO2-IS-7"
    assert PLAIN_PASSWORD not in response.get_data(as_text=True)
    preview = auditor_client.get("/sharing/config/is?direction=off")
    assert preview.status_code == 200 and tomllib.loads(preview.get_data(as_text=True)) == {}
    assert auditor_client.get("/sharing/config/is?direction=both").status_code == 404
    assert auditor_client.get("/sharing/config/oracle").status_code == 404
    assert auditor_client.post("/sharing/config/apim/with-passwords").status_code == 403
    clear = admin_client.post("/sharing/config/apim/with-passwords")
    assert clear.status_code == 200
    assert tomllib.loads(clear.get_data(as_text=True))["apim"]["tenant_sharing"][0]["properties"]["password"] == \
        PLAIN_PASSWORD
    assert clear.headers["Cache-Control"] == "no-store"


def test_operators_cannot_change_sharing(operator_client):
    assert operator_client.post("/sharing/", data={"direction": "off"}).status_code == 403
    assert operator_client.post("/sharing/config/is/with-passwords").status_code == 403
