"""The IS 7 simulator's own Java DN rendering (simulators/x509_names.py) against the real JDK, on the same
awkward names the portal's renderer is checked with (quotes, escaped commas, multi-valued RDNs, non-string
types printed in hex, non-ASCII)."""
from __future__ import annotations

import pytest

from simulators import x509_names
from simulators.pki import issue, name
from tests.test_certificates import DN_CASES


@pytest.fixture(scope="module")
def jdk(java_dns):
    issued = {key: issue(value, ca=True) for key, value in DN_CASES.items()}
    issued["leaf under a CA"] = issue(name(("C", "LK"), ("CN", "leaf + more")), issued["escaped comma in O"])
    keys = list(issued)
    printed = java_dns([issued[k].der for k in keys])
    return {k: (issued[k].cert, printed[i]) for i, k in enumerate(keys)}


@pytest.mark.parametrize("case", [*DN_CASES, "leaf under a CA"])
def test_simulator_renders_names_as_the_jdk(jdk, case):
    cert, (java_issuer, java_subject) = jdk[case]
    assert x509_names.issuer_name(cert) == java_issuer
    assert x509_names.subject_name(cert) == java_subject
    assert x509_names.java_name(cert.issuer) == java_issuer


def test_keyword_table_prefers_the_later_alias():
    assert x509_names.OID_TO_KEYWORD["2.5.4.8"] == "ST"
    assert x509_names.OID_TO_KEYWORD["1.2.840.113549.1.9.1"] == "EMAILADDRESS"
    assert x509_names.OID_TO_KEYWORD["2.5.4.46"] == "DNQ"
