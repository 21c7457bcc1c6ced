"""Changing a tenant's token algorithm on Edit goes through rotation (issue 16): the form warns and asks for an
explicit confirmation, and the old key turns passive for the grace period instead of retiring at once, so a token
it signed before the change keeps validating until the grace period ends, with its own algorithm only."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import timedelta

import jwt
import pytest
import sqlalchemy as sa

from portal.models import SigningKey
from portal.models.base import utcnow
from portal.services.context import Actor
from portal.services.errors import ValidationError
from portal.services.tenants import service as tenants
from portal.services.tokens import service as tokens

ACTOR = Actor(name="algorithm-tests")
BASE = "http://localhost/"
CLIENT_SECRET = "algo-client-secret-4f1c9e7d2b8a"
HS_KEY = "algo-" + "0123456789abcdef" * 4


def body(**overrides) -> dict:
    value = {"tenantId": "algo", "clientId": "algo-client", "clientSecret": CLIENT_SECRET,
             "identityProviderType": "LDAP", "supportAlgorithm": "HS256", "signingKey": HS_KEY,
             "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1",
                            "directoryServiceDomainName": "example.com",
                            "directoryServiceRootDistinguishedName": "dc=example,dc=com"}}
    value.update(overrides)
    return value


@pytest.fixture
def ctx(app):
    with app.app_context():
        tenants.register_tenant(body(), ACTOR, skip_check=True)
        yield app


def change_to_rs256(**kwargs):
    return tenants.update_tenant("algo", body(clientSecret=None, signingKey=None, supportAlgorithm="RS256"), ACTOR,
                                 skip_check=True, **kwargs)


def token() -> str:
    return tokens.issue("algo-client", CLIENT_SECRET, {"grant_type": "client_credentials"}, BASE).access_token


def test_without_confirmation_nothing_changes(ctx):
    with pytest.raises(ValidationError) as caught:
        change_to_rs256(confirm_algorithm_change=False)
    message = caught.value.errors["supportAlgorithm"]
    assert "from HS256 to RS256 rotates the signing key" in message and "stays passive for 24 hours" in message
    tenant = tenants.get_tenant("algo")
    assert tenant.support_algorithm == "HS256" and [k.status for k in tenant.keys] == ["active"]


def test_the_old_key_stays_passive_and_its_token_validates_during_the_grace_period(ctx):
    before = token()
    old_kid = jwt.get_unverified_header(before)["kid"]
    change_to_rs256(confirm_algorithm_change=True)
    tenant = tenants.get_tenant("algo")
    keys = {k.kid: k for k in tenant.keys}
    assert keys[old_kid].status == "passive" and keys[old_kid].algorithm == "HS256"
    assert abs(keys[old_kid].passive_until - (utcnow() + timedelta(days=1))) < timedelta(minutes=1)
    assert tenant.active_key.algorithm == "RS256"

    verdict = tokens.validate(before, BASE)
    assert verdict.valid, verdict.reason  # signed with HS256 before the change
    after = token()
    assert jwt.get_unverified_header(after)["alg"] == "RS256" and tokens.validate(after, BASE).valid

    # An HS256 token under the new RSA key's kid (signed with its public key as the HMAC secret) is refused:
    # only a passive key's own algorithm is accepted, for that key's kid.
    new = tenant.active_key
    forged = _forge_hs256(before, new.kid, new.public_pem)
    assert tokens.validate(forged, BASE).reason == "algorithm_mismatch"


def _forge_hs256(template: str, kid: str, secret: str) -> str:
    """The template's claims, signed HS256 by hand with `secret` under `kid` (PyJWT refuses a PEM as HMAC key)."""
    claims = jwt.decode(template, options={"verify_signature": False})

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64(signature)}"


def test_after_the_grace_period_the_old_token_is_refused(ctx, db):
    before = token()
    change_to_rs256(confirm_algorithm_change=True)
    db.session.execute(sa.update(SigningKey).where(SigningKey.status == "passive")
                       .values(passive_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert not tokens.validate(before, BASE).valid


def test_the_edit_form_warns_and_asks_for_confirmation(ctx, admin_client):
    page = admin_client.get("/tenants/algo/edit").get_data(as_text=True)
    assert "Changing the algorithm rotates the signing key" in page
    assert re.search(r'<input aria-describedby="algorithm-change-warning"[^>]*id="confirmAlgorithmChange"', page)
    data = {"clientId": "algo-client", "identityProviderType": "LDAP", "supportAlgorithm": "RS256",
            "rsaKeySize": "2048", "ldapURLForDirectoryService": "ldap://127.0.0.1:1",
            "directoryServiceDomainName": "example.com", "directoryServiceRootDistinguishedName": "dc=example,dc=com",
            "ownerProvisioningMethod": "invite-via-email", "skip_check": "y", "save": "Save changes"}
    refused = admin_client.post("/tenants/algo/edit", data=data)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 200 and 'class="error-summary"' in text
    assert re.search(r'<a href="#supportAlgorithm" data-field-link>Token algorithm: Changing the algorithm', text)
    assert tenants.get_tenant("algo").support_algorithm == "HS256"

    done = admin_client.post("/tenants/algo/edit", data={**data, "confirmAlgorithmChange": "y"})
    assert done.status_code == 302
    ctx_tenant = tenants.get_tenant("algo")
    assert ctx_tenant.support_algorithm == "RS256"
    assert sorted(k.status for k in ctx_tenant.keys) == ["active", "passive"]
