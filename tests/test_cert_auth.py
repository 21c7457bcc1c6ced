"""IS 7's client-certificate decision (services.cert_auth) on a table of cases: DN matching, thumbprints, order,
wildcards, users, system mappings. The rules are those of wso2-apis.md §2."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from portal.services.certificates.cert_auth import (
    SystemMapping,
    UserMapping,
    evaluate,
    issuer_matches,
    normalize_dn,
    tenant_of,
)

ISSUER = "CN=RootCA, OU=IAM, O=WSO2, L=Colombo, ST=Western, C=LK"  # as Java prints it
OTHER_ISSUER = "CN=Other CA, O=WSO2, C=LK"
T1 = ":".join(["AB"] * 32)
T2 = ":".join(["CD"] * 32)


@pytest.mark.parametrize("configured, expected", [
    (ISSUER, True),
    ("C=LK, ST=Western, L=Colombo, O=WSO2, OU=IAM, CN=RootCA", True),  # openssl's order
    ("C = LK, ST = Western, L = Colombo, O = WSO2, OU = IAM, CN = RootCA", True),  # openssl's default spacing
    ("CN=RootCA,OU=IAM ,  O=WSO2,L=Colombo,ST=Western,C=LK", True),  # spacing
    ("cn=RootCA, ou=IAM, o=WSO2, l=Colombo, st=Western, c=LK", True),  # key case
    ("CN=rootca, OU=IAM, O=WSO2, L=Colombo, ST=Western, C=LK", False),  # value case matters
    ("CN=RootCA, OU=IAM, O=WSO2, L=Colombo, C=LK", False),  # a missing part
    ("CN=RootCA, OU=IAM, O=WSO2, L=Colombo, ST=Western, C=LK, DC=x", False),  # an extra part
    ("*", False),
])
def test_issuer_matching(configured, expected):
    assert issuer_matches(configured, ISSUER) is expected


def test_escaped_commas_match_only_as_java_prints_them():
    java = 'CN=Example Issuing CA, O="Example Corp, Inc.", C=US'
    assert issuer_matches(java, java)  # exact equality comes first
    assert issuer_matches('C=US, O="Example Corp, Inc.", CN=Example Issuing CA', java)  # naive split, same halves
    assert not issuer_matches("CN=Example Issuing CA,O=Example Corp\\, Inc.,C=US", java)  # RFC 2253 form


@pytest.mark.parametrize("dn, normalized", [
    ("cn = a , o=B", "CN=a, O=B"),
    ("O=B, CN=a", "CN=a, O=B"),
    ("CN=a + UID=b, C=LK", "C=LK, CN=a + UID=b"),  # '+' is not split: a multi-valued RDN stays one part
])
def test_normalize_dn(dn, normalized):
    assert normalize_dn(dn) == normalized


@dataclass
class Case:
    name: str
    user: str | None
    users: list[UserMapping] = field(default_factory=list)
    systems: list[SystemMapping] = field(default_factory=list)
    ok: bool = True
    kind: str = "user"
    index: int | None = 0
    as_user: str | None = None
    reason: str = ""  # a fragment of Decision.reason
    issuer: str = ISSUER
    thumbprint: str = T1


CASES = [
    Case("exact thumbprint", "alice", [UserMapping(ISSUER, T1, ("alice",))], as_user="alice"),
    Case("exact before wildcard, even when the wildcard comes first", "alice",
         [UserMapping(ISSUER, "*", ("bob",)), UserMapping(ISSUER, T1, ("alice",))], index=1, as_user="alice"),
    Case("wildcard when no exact thumbprint", "bob",
         [UserMapping(ISSUER, T2, ("bob",)), UserMapping(ISSUER, "*", ("bob",))], index=1, as_user="bob"),
    Case("first match wins, no fall-through to a later mapping", "alice",
         [UserMapping(ISSUER, T1, ("bob",)), UserMapping(ISSUER, T1, ("alice",))], ok=False, index=0,
         reason="'alice' is not in its allowed_username"),
    Case("blank thumbprint means *", "alice", [UserMapping(ISSUER, "", ("alice",))], as_user="alice"),
    Case("empty allowed_username means *", "anyone", [UserMapping(ISSUER, T1, ())], as_user="anyone"),
    Case('"*" username', "anyone", [UserMapping(ISSUER, T1, ("*",))], as_user="anyone"),
    Case('trusted_issuer "*" is skipped', "alice", [UserMapping("*", T1, ("alice",))], ok=False, index=None,
         reason="No user mapping has a trusted_issuer matching"),
    Case("user compared case-insensitively, header kept as sent", "ALICE", [UserMapping(ISSUER, T1, ("Alice",))],
         as_user="ALICE"),
    Case("thumbprint compared ignoring case", "alice", [UserMapping(ISSUER, T1.lower(), ("alice",))],
         as_user="alice"),
    Case("thumbprint without colons never matches", "alice",
         [UserMapping(ISSUER, T1.replace(":", ""), ("alice",))], ok=False, index=None,
         reason="none has the certificate's thumbprint"),
    Case("a colon-less thumbprint falls through to a later wildcard", "alice",
         [UserMapping(ISSUER, T1.replace(":", ""), ("bob",)), UserMapping(ISSUER, "*", ("alice",))], index=1,
         as_user="alice"),
    Case("issuer in another order and spacing", "alice",
         [UserMapping("C=LK,ST=Western,L=Colombo,O=WSO2,OU=IAM,CN=RootCA", T1, ("alice",))], as_user="alice"),
    Case("issuer value case differs", "alice",
         [UserMapping(ISSUER.replace("RootCA", "ROOTCA"), T1, ("alice",))], ok=False, index=None,
         reason="No user mapping has a trusted_issuer matching"),
    Case("mappings of another issuer are ignored", "alice",
         [UserMapping(OTHER_ISSUER, T1, ("alice",)), UserMapping(ISSUER, "*", ("alice",))], index=1,
         as_user="alice"),
    Case("no user mappings", "alice", [], [SystemMapping(ISSUER, T1, "admin")], ok=False, index=None,
         reason="There are no user thumbprint mappings"),
    Case("matching issuer but other thumbprint and no wildcard", "alice", [UserMapping(ISSUER, T2, ("alice",))],
         ok=False, index=None, reason="none has the certificate's thumbprint"),
    Case("no header: system mapping with a user", None, [UserMapping(ISSUER, T1, ("alice",))],
         [SystemMapping(ISSUER, T1, "admin")], kind="system", as_user="admin"),
    Case("blank header counts as none", "   ", [], [SystemMapping(ISSUER, T1, "admin")], kind="system",
         as_user="admin"),
    Case('system "*": in, with no user', None, [], [SystemMapping(ISSUER, T1, "*")], kind="system", as_user=None,
         reason="with no user"),
    Case("system blank user means *", None, [], [SystemMapping(ISSUER, T1, "")], kind="system", as_user=None),
    Case("system: exact before wildcard", None, [],
         [SystemMapping(ISSUER, "*", "*"), SystemMapping(ISSUER, T1, "svc")], kind="system", index=1,
         as_user="svc"),
    Case("system: first match wins", None, [],
         [SystemMapping(ISSUER, T1, "first"), SystemMapping(ISSUER, T1, "second")], kind="system", as_user="first"),
    Case('system: "*" issuer skipped', None, [], [SystemMapping("*", T1, "admin")], ok=False, kind="system",
         index=None, reason="No system mapping has a trusted_issuer matching"),
    Case("no header and no system mappings", None, [UserMapping(ISSUER, T1, ("alice",))], [], ok=False,
         kind="system", index=None, reason="There are no system thumbprint mappings"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_evaluate(case: Case):
    decision = evaluate(case.issuer, case.thumbprint, case.user, case.users, case.systems)
    assert decision.ok is case.ok, decision.reason
    assert decision.kind == case.kind
    assert decision.mapping_index == case.index
    if case.ok:
        assert decision.user == case.as_user
    assert case.reason in decision.reason
    assert decision.steps[0] == f"Certificate issuer (as IS reads it): {case.issuer}"


def test_the_user_must_exist():
    users = [UserMapping(ISSUER, T1, ("alice@abc.com",))]
    asked = []

    def exists(name: str) -> bool:
        asked.append(name)
        return name == "bob"

    decision = evaluate(ISSUER, T1, "alice@abc.com", users, [], user_exists=exists)
    assert not decision.ok and decision.mapping_index == 0 and asked == ["alice@abc.com"]
    assert "does not exist" in decision.reason
    decision = evaluate(ISSUER, T1, None, [], [SystemMapping(ISSUER, T1, "bob")], user_exists=exists)
    assert decision.ok and decision.user == "bob" and "exists" in decision.steps[-1]


def test_an_anonymous_system_call_needs_no_user():
    decision = evaluate(ISSUER, T1, None, [], [SystemMapping(ISSUER, T1, "*")], user_exists=lambda name: False)
    assert decision.ok and decision.user is None


def test_steps_name_each_mapping():
    decision = evaluate(ISSUER, T1, "alice", [UserMapping("*", T1), UserMapping(OTHER_ISSUER, T1),
                                              UserMapping(ISSUER, T1, ("alice",))], [])
    text = "\n".join(decision.steps)
    assert "user mapping #1: skipped" in text and "user mapping #2: issuer" in text
    assert "user mapping #3 chosen: its thumbprint equals" in text


@pytest.mark.parametrize("username, tenant", [
    ("admin", "carbon.super"), ("admin@carbon.super", "carbon.super"), ("kim@abc.com", "abc.com"),
    ("PRIMARY/kim@abc.com", "abc.com"), ("a@b@c.org", "c.org"),
])
def test_tenant_of(username, tenant):
    assert tenant_of(username) == tenant


def test_the_backport_line():
    """User-mapping thumbprints compared exactly, system ones ignoring case; no user-existence check."""
    lower = [UserMapping(ISSUER, T1.lower(), ("alice",))]
    assert evaluate(ISSUER, T1, "alice", lower, []).ok
    decision = evaluate(ISSUER, T1, "alice", lower, [], line="backport")
    assert not decision.ok and "none has the certificate's thumbprint" in decision.reason
    system = [SystemMapping(ISSUER, T1.lower(), "svc")]
    assert evaluate(ISSUER, T1, None, [], system, line="backport").user == "svc"
    nobody = evaluate(ISSUER, T1, "ghost", [UserMapping(ISSUER, T1, ("*",))], [], user_exists=lambda n: False,
                      line="backport")
    assert nobody.ok and nobody.user == "ghost" and "does not check that the user exists" in nobody.steps[-1]
    with pytest.raises(ValueError):
        evaluate(ISSUER, T1, "alice", lower, [], line="1.9.x")


def test_blank_entries_in_allowed_username_are_dropped():
    """IS's getChildrenTextList drops blank names; only an empty list means "*"."""
    assert not evaluate(ISSUER, T1, "kim", [UserMapping(ISSUER, T1, ("", "bob"))], []).ok
    assert evaluate(ISSUER, T1, "kim", [UserMapping(ISSUER, T1, ("", " "))], []).ok
