"""The LDAP identity-provider check against a real slapd (see tests/ldap_server.py).

slapd and ldap-utils are required: without them these tests fail with a message saying what to install;
they never skip. One private slapd serves the whole module, on free ports of 127.0.0.1.
"""
from __future__ import annotations

import socket

import pytest

from portal.clients import ldap as ldap_client
from portal.clients.checks import CheckResult
from portal.clients.ldap import check_ldap
from portal.idp.ldap_settings import (
    BIND_DN_FIELD,
    DOMAIN_FIELD,
    PASSWORD_FIELD,
    ROOT_DN_FIELD,
    URL_FIELD,
    LdapTarget,
    parse_ldap_url,
)
from tests import ldap_server
from tests.ldap_server import Slapd, SlapdNotInstalled, free_ports

ALL_FIELDS = {URL_FIELD, DOMAIN_FIELD, ROOT_DN_FIELD, BIND_DN_FIELD, PASSWORD_FIELD}




@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: validation problems must be reported before connecting."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the check tried to connect")

    monkeypatch.setattr(ldap_client.socket, "create_connection", refuse)
    monkeypatch.setattr(ldap_client, "Connection", refuse)


def _text(result: CheckResult) -> str:
    return "\n".join([result.summary, *result.details, *result.field_errors.values()])


def _closed_port() -> int:
    return free_ports(1)[0]


# --- Validation, without a server -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ldap://127.0.0.1:38911", LdapTarget("ldap", "127.0.0.1", 38911)),
        ("ldap://ldap.example.com", LdapTarget("ldap", "ldap.example.com", 389)),
        ("LDAPS://ldap.example.com/", LdapTarget("ldaps", "ldap.example.com", 636)),
        (" ldaps://[::1]:1636 ", LdapTarget("ldaps", "::1", 1636)),
    ],
)
def test_accepted_urls(url: str, expected: LdapTarget) -> None:
    assert parse_ldap_url(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("string", "placeholder"),
        ("ldap.example.com", "not an LDAP URL"),
        ("http://ldap.example.com", "http:// URLs are not supported"),
        ("ldapi:///var/run/slapd/ldapi", "ldapi:// URLs are not supported"),
        ("ldap://admin:secret@ldap.example.com", "not in the URL"),
        ("ldap://ldap.example.com/dc=example,dc=com", "directoryServiceRootDistinguishedName"),
        ("ldap://ldap.example.com/??sub", "directoryServiceRootDistinguishedName"),
        ("ldap://", "names no host"),
        ("ldap://bad_host!:389", "not a valid host name"),
        ("ldap://ldap.example.com:0", "not valid"),
        ("ldap://ldap.example.com:70000", "not valid"),
        ("ldap://[::zz]:389", "not a valid IPv6 address"),
        ("ldap://::1:389", "in brackets"),
    ],
)
def test_rejected_urls(url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_ldap_url(url)


def test_url_messages_do_not_repeat_credentials() -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_ldap_url("ldap://admin:hunter2-secret@ldap.example.com")
    assert "hunter2-secret" not in str(excinfo.value)


def test_seed_sample_placeholders_are_field_errors_without_network(no_network: None) -> None:
    result = check_ldap("string", "string", "string", bind_dn="string", bind_password="string")
    assert not result.ok
    assert set(result.field_errors) == ALL_FIELDS
    assert "placeholder" in result.field_errors[URL_FIELD]
    assert "5 LDAP settings" in result.summary


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"domain_name": "example"}, DOMAIN_FIELD, "DNS domain"),
        ({"domain_name": "10.0.0.1"}, DOMAIN_FIELD, "DNS domain"),
        ({"domain_name": ""}, DOMAIN_FIELD, "Enter"),
        ({"root_dn": "dc=example,,dc=com"}, ROOT_DN_FIELD, "not a valid distinguished name"),
        ({"root_dn": "  "}, ROOT_DN_FIELD, "Enter"),
        ({"bind_dn": "admin", "bind_password": "pw-123"}, BIND_DN_FIELD, "not a valid distinguished name"),
        ({"bind_password": "pw-123"}, BIND_DN_FIELD, "goes with the password"),
        ({"url": "ldaps://ldap.example.com", "start_tls": True}, URL_FIELD, "StartTLS is only for ldap://"),
    ],
)
def test_invalid_settings_are_pinned_to_their_field(no_network: None, kwargs: dict, field: str, fragment: str) -> None:
    settings = {"url": "ldap://ldap.example.com", "domain_name": "example.com", "root_dn": "dc=example,dc=com"}
    settings.update(kwargs)
    result = check_ldap(settings.pop("url"), settings.pop("domain_name"), settings.pop("root_dn"), **settings)
    assert not result.ok
    assert set(result.field_errors) == {field}
    assert fragment in result.field_errors[field]


@pytest.mark.parametrize("password", [None, ""])
def test_bind_dn_without_password_is_refused(no_network: None, password: str | None) -> None:
    # An empty password makes a simple bind "unauthenticated": many servers accept it without checking.
    result = check_ldap("ldap://ldap.example.com", "example.com", "dc=example,dc=com",
                        bind_dn="cn=admin,dc=example,dc=com", bind_password=password)
    assert not result.ok
    assert set(result.field_errors) == {PASSWORD_FIELD}


def test_missing_ca_file_is_reported_before_connecting(no_network: None, tmp_path) -> None:
    result = check_ldap("ldaps://ldap.example.com", "example.com", "dc=example,dc=com",
                        ca_file=str(tmp_path / "missing.pem"))
    assert not result.ok
    assert "does not exist" in result.summary


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        check_ldap("ldap://ldap.example.com", "example.com", "dc=example,dc=com", timeout=0)


# --- Against slapd --------------------------------------------------------------------------------------


def test_missing_slapd_fails_with_install_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ldap_server, "_SEARCH_PATH", "/nonexistent")
    with pytest.raises(SlapdNotInstalled, match=r"slapd was not found; install .*apt-get install -y slapd ldap-utils"):
        Slapd().start()


def test_anonymous_bind_reads_root_dn(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldap_url, slapd.domain_name, slapd.root_dn)
    assert result.ok, result
    assert result.summary == f"Bound to {slapd.ldap_url} as anonymous; {slapd.root_dn} has 2 entries below it"
    assert "Bound anonymously." in result.details
    assert any("objectClass: dcObject, organization" in line for line in result.details)
    assert result.field_errors == {}


def test_admin_bind_over_plain_ldap(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldap_url, slapd.domain_name, slapd.root_dn,
                        bind_dn=slapd.admin_dn, bind_password=slapd.admin_password)
    assert result.ok, result
    assert result.summary == (
        f"Bound to {slapd.ldap_url} as {slapd.admin_dn}; {slapd.root_dn} has 2 entries below it"
    )
    # The password went over the wire in clear text: the administrator is told.
    assert any("unencrypted" in line for line in result.details)
    assert slapd.admin_password not in _text(result)


def test_user_bind_with_a_root_dn_below_the_suffix(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldap_url, slapd.domain_name, slapd.users_dn,
                        bind_dn=slapd.user_dn, bind_password=slapd.user_password)
    assert result.ok, result
    assert result.summary.endswith(f"{slapd.users_dn} has 1 entry below it")


def test_domain_name_that_does_not_match_the_root_dn_is_a_warning(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldap_url, "example.org", slapd.root_dn)
    assert result.ok, result
    assert any("does not match" in line and "example.com" in line for line in result.details)


def test_start_tls_with_the_ca(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldap_url, slapd.domain_name, slapd.root_dn, bind_dn=slapd.admin_dn,
                        bind_password=slapd.admin_password, start_tls=True, ca_file=slapd.ca_file)
    assert result.ok, result
    assert any(line.startswith("StartTLS established (TLSv1.") for line in result.details)
    assert not any("unencrypted" in line for line in result.details)


def test_start_tls_without_the_ca_is_not_trusted(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldap_url, slapd.domain_name, slapd.root_dn, bind_dn=slapd.admin_dn,
                        bind_password=slapd.admin_password, start_tls=True)
    assert not result.ok
    assert "not trusted" in result.summary
    assert set(result.field_errors) == {URL_FIELD}
    assert not any(line.startswith("Bound") for line in result.details)  # nothing was sent after the handshake


def test_ldaps_with_the_ca(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldaps_url, slapd.domain_name, slapd.root_dn, bind_dn=slapd.admin_dn,
                        bind_password=slapd.admin_password, ca_file=slapd.ca_file)
    assert result.ok, result
    assert result.summary.startswith(f"Bound to {slapd.ldaps_url} as {slapd.admin_dn};")
    assert any(line.startswith("TLS established (TLSv1.") for line in result.details)


def test_ldaps_by_host_name_checks_the_certificate_name(slapd: Slapd) -> None:
    url = slapd.ldaps_url.replace("127.0.0.1", "localhost")
    result = check_ldap(url, slapd.domain_name, slapd.root_dn, ca_file=slapd.ca_file)
    assert result.ok, result
    assert any("valid for localhost" in line for line in result.details)


def test_ldaps_without_the_ca_is_not_trusted(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldaps_url, slapd.domain_name, slapd.root_dn)
    assert not result.ok
    assert "not trusted" in result.field_errors[URL_FIELD]


def test_wrong_password_is_pinned_on_the_password_and_never_shown(slapd: Slapd) -> None:
    wrong = "Wrong-Pa55word-" + slapd.admin_password[::-1]
    result = check_ldap(slapd.ldap_url, slapd.domain_name, slapd.root_dn,
                        bind_dn=slapd.admin_dn, bind_password=wrong)
    assert not result.ok
    assert PASSWORD_FIELD in result.field_errors
    assert "invalidCredentials" in result.summary
    for text in [result.summary, *result.details, *result.field_errors.values(), *result.field_errors]:
        assert wrong not in text
        assert slapd.admin_password not in text


def test_unknown_root_dn_is_pinned_on_the_root_dn(slapd: Slapd) -> None:
    root_dn = "ou=nobody,dc=example,dc=com"
    result = check_ldap(slapd.ldap_url, slapd.domain_name, root_dn,
                        bind_dn=slapd.admin_dn, bind_password=slapd.admin_password)
    assert not result.ok
    assert set(result.field_errors) == {ROOT_DN_FIELD}
    assert "does not exist" in result.field_errors[ROOT_DN_FIELD]
    assert f"closest existing entry is {slapd.root_dn}" in result.summary


def test_root_dn_anonymous_clients_may_not_read(slapd: Slapd) -> None:
    result = check_ldap(slapd.ldap_url, slapd.domain_name, slapd.private_dn)
    assert not result.ok
    assert set(result.field_errors) == {BIND_DN_FIELD}
    assert "may not read" in result.summary


def test_closed_port_cannot_be_reached() -> None:
    url = f"ldap://127.0.0.1:{_closed_port()}"
    result = check_ldap(url, "example.com", "dc=example,dc=com", timeout=2)
    assert not result.ok
    assert result.summary.startswith(f"Cannot reach {url}: connection refused")
    assert set(result.field_errors) == {URL_FIELD}


def test_silent_server_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (the kernel does) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"ldap://127.0.0.1:{listener.getsockname()[1]}"
        result = check_ldap(url, "example.com", "dc=example,dc=com", timeout=0.5)
    assert not result.ok
    assert "sent no LDAP answer within 0.5 s" in result.summary


def test_plain_ldap_on_the_ldaps_port_is_explained(slapd: Slapd) -> None:
    url = f"ldap://127.0.0.1:{slapd.ldaps_port}"
    result = check_ldap(url, slapd.domain_name, slapd.root_dn)
    assert not result.ok
    assert "is this an ldaps:// port?" in result.field_errors[URL_FIELD]


def test_ldaps_on_the_plain_port_is_explained(slapd: Slapd) -> None:
    url = f"ldaps://127.0.0.1:{slapd.ldap_port}"
    result = check_ldap(url, slapd.domain_name, slapd.root_dn, ca_file=slapd.ca_file)
    assert not result.ok
    assert "is this a plain ldap:// port?" in result.field_errors[URL_FIELD]


def test_start_tls_on_a_server_without_tls(tmp_path) -> None:
    with Slapd(tmp_path, tls=False) as plain:
        result = check_ldap(plain.ldap_url, plain.domain_name, plain.root_dn, start_tls=True)
    assert not result.ok
    assert "does not offer StartTLS" in result.field_errors[URL_FIELD]
