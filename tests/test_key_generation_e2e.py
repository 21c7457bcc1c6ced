"""Issue 12's proof that an onboarded tenant works in API Manager, not only exists there: with
auto_configure_key_manager, the simulated API Manager makes a WSO2-IS-7 key manager for each new tenant, which
registers a client and gets a token from IS over mutual TLS as `<tenant admin>@<tenant domain>`. IS's mappings come
from the portal's own generated deployment.toml, so the portal's lint is checked against what IS then does: with
allowed_username "*" key generation works; with a mapping limited to `admin` it fails, and the lint said so first."""
from __future__ import annotations

from pathlib import Path

import pytest

from portal.services.certificates import mapping_lint, mappings, service as certificates
from simulators.is7 import load_mappings
from tests.sync_env import ACTOR, Wso2, wso2
from tests.test_sync import FAST, drain, register


@pytest.fixture
def env():
    with wso2(key_manager_users=()) as products:  # IS's mappings come from the portal's TOML below
        yield products


@pytest.fixture(params=["is_to_apim", "apim_to_is"])
def portal(request, make_app, env: Wso2):
    app = make_app(**FAST)
    env.connect(app)
    env.share(app, request.param)
    return app


def _apim_certificate_mapping(app, env: Wso2) -> int:
    """Upload API Manager's client certificate and make a user mapping from it, as the pages do."""
    with app.app_context():
        stored = certificates.upload_certificate("apim", env.apim_client.cert_pem.encode(), ACTOR).stored[0]
        prefill = mappings.prefill_from_certificate(stored.id, "user")
        return mappings.create_mapping("user", prefill, ACTOR).id


def _deploy_is_mappings(app, env: Wso2, tmp_path: Path) -> None:
    """What an administrator does with the generated block: put it in IS's deployment.toml (here: the simulator)."""
    with app.app_context():
        text = mappings.deployment_toml()
    path = tmp_path / "is7-client-cert-auth.toml"
    path.write_text(text)
    env.is7.set_mappings(*load_mappings(path))


def _key_manager_lint(app) -> list[mapping_lint.Finding]:
    with app.app_context():
        return [f for f in mapping_lint.lint().general if "key manager user" in f.message]


def test_key_generation_works_with_the_prefilled_mapping(portal, env: Wso2, tmp_path: Path):
    mapping_id = _apim_certificate_mapping(portal, env)
    with portal.app_context():
        assert list(mappings.get_mapping(mapping_id).allowed_usernames) == ["*"]  # the seed's sample
    _deploy_is_mappings(portal, env, tmp_path)
    assert [f.level for f in _key_manager_lint(portal)] == ["info"]

    domain = register(portal, "acme")
    drain(portal)

    generation = env.apim.key_generation(domain)
    assert generation is not None and generation.ok, generation
    assert generation.identity_user == f"acme-admin@{domain}"
    dcr = [r for r in env.is7.requests if r.path == f"/t/{domain}/api/identity/oauth2/dcr/v1.1/register"]
    assert [(r.status, r.user, r.client_thumbprint) for r in dcr] == [
        (201, f"acme-admin@{domain}", env.apim_client.thumbprint)]
    token = [r for r in env.is7.requests if r.path == f"/t/{domain}/oauth2/token"]
    assert [r.status for r in token] == [200]


def test_a_mapping_limited_to_admin_fails_key_generation_and_the_lint_said_so(portal, env: Wso2, tmp_path: Path):
    mapping_id = _apim_certificate_mapping(portal, env)
    with portal.app_context():
        mapping = mappings.get_mapping(mapping_id)
        mappings.update_mapping(mapping_id, mappings.MappingInput(mapping.trusted_issuer, mapping.cert_thumbprint,
                                                                  ("admin",)), ACTOR)
    _deploy_is_mappings(portal, env, tmp_path)
    first = register(portal, "first")
    drain(portal)
    assert not env.apim.key_generation(first).ok  # the tenant exists in both products, but keys cannot be made

    findings = _key_manager_lint(portal)  # before the next tenant: the lint names the one already refused
    assert [f.level for f in findings] == ["error"]
    assert f"first-admin@{first}" in findings[0].message and "401" in findings[0].message

    second = register(portal, "second")
    drain(portal)
    generation = env.apim.key_generation(second)
    assert generation is not None and generation.outcome.startswith("failed 401"), generation
    assert env.is7.tenant(second) is not None and env.apim.tenant(second) is not None

    # Fixing the mapping as the lint asks, and deploying it, lets API Manager generate keys again.
    with portal.app_context():
        mapping = mappings.get_mapping(mapping_id)
        mappings.update_mapping(mapping_id, mappings.MappingInput(mapping.trusted_issuer, mapping.cert_thumbprint,
                                                                  ("*",)), ACTOR)
    _deploy_is_mappings(portal, env, tmp_path)
    assert [f.level for f in _key_manager_lint(portal)] == ["info"]
    assert env.apim.generate_keys(second).ok
