"""The Entra ID simulator over real HTTPS (a subprocess, tests/entra_fixtures.py): discovery, keys, tokens, the
test controls and Entra's error bodies."""
from __future__ import annotations

import base64
import json

from simulators.entra_directory import API_V1, API_V2, CONTOSO, CONTOSO_DOMAIN, DAEMON


def parts(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


def test_discovery_and_tokens_by_manifest_version(entra_sim):
    document = entra_sim.session.get(f"{entra_sim.base_url}/{CONTOSO_DOMAIN}/v2.0/.well-known/openid-configuration")
    assert document.status_code == 200
    assert document.json()["issuer"] == f"{entra_sim.base_url}/{CONTOSO}/v2.0"
    secret = entra_sim.app("daemon")["clientSecret"]
    _, v2 = parts(entra_sim.token(DAEMON, secret, f"api://{API_V2}/.default"))
    assert (v2["ver"], v2["aud"], v2["iss"]) == ("2.0", API_V2, f"{entra_sim.base_url}/{CONTOSO}/v2.0")
    legacy = entra_sim.app(API_V1)["appIdUri"]
    _, v1 = parts(entra_sim.token(DAEMON, secret, f"{legacy}/.default"))
    assert (v1["ver"], v1["aud"], v1["iss"]) == ("1.0", legacy, f"https://sts.windows.net/{CONTOSO}/")
