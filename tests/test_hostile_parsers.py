"""Hostile input for every parser and validator: whatever arrives, each one answers with its documented error type
(ValueError, ValidationError, KeyProblem, FileProblem...) or a result that holds its promises, never anything else;
URLs that parse give back their parts, and generated TOML parses back (tomllib) to exactly the values given.

Hypothesis runs derandomized with no example database, its caches kept out of the repository, so CI sees the same
examples every run; `HOSTILE_EXAMPLES` scales every test at once (the forms' `HOSTILE_FORM_EXAMPLES` likewise)."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, assume, event, example, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from portal.idp import jdbc_url, ldap_settings, registry
from portal.models.tenant import ALGORITHMS
from portal.services.certificates import cert_auth, mapping_lint, mappings, service as certificates
from portal.services.context import Actor
from portal.services.errors import ValidationError
from portal.services.sharing import connections, wso2_config
from portal.services.tenants import bulk_files, fields as tenant_fields, spec as tenant_spec
from portal.services.tokens import signing_keys
from portal.web.helpers import safe_next

# Hypothesis keeps caches under .hypothesis/ in the working directory, the example database too unless told
# otherwise: these tests write neither into the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tenant-portal-hypothesis")
settings.register_profile(
    "hostile", derandomize=not os.environ.get("HOSTILE_RANDOM"), database=None, deadline=None, print_blob=True,
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "200")),
)
HOSTILE = settings.get_profile("hostile")

# --- strategies -----------------------------------------------------------------------------------------------

# What a browser or a JSON body can carry, lone surrogates aside (a form post cannot hold them; JSON can, below).
CHARS = st.characters(codec="utf-8")
AWKWARD = st.sampled_from(list('"\'\\,;=+<>#/:@?&%[]{}$.* \t\r\n\x00\x1f\x7f') +
                          ["\u00e9", "\u0130", "\u00df", "\u202e", "\ufeff", "\u2028", "\U0001f600", "\u00b2"])
TEXT = st.text(st.one_of(CHARS, AWKWARD), max_size=60)
# JSON bodies can hold lone surrogates ("\ud800" is valid JSON): the API's validators must cope with those too.
JSON_TEXT = st.one_of(TEXT, st.text(st.one_of(CHARS, AWKWARD, st.characters(categories=["Cs"])), max_size=30))
ASCII_TOKEN = st.text(st.sampled_from("abcXYZ019_-$.:/@%+ "), max_size=12)

LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
HOSTNAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join).filter(lambda h: len(h) <= 253)
IDENTIFIER = st.from_regex(r"[A-Za-z_][A-Za-z0-9_$]{0,20}", fullmatch=True)
PORT = st.integers(1, 65535)


def _utf8_ok(value) -> bool:
    """Storable: every string in the value encodes as UTF-8 (what the database and TOML need)."""
    if isinstance(value, str):
        value.encode("utf-8")
        return True
    if isinstance(value, dict):
        return all(_utf8_ok(k) and _utf8_ok(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_utf8_ok(v) for v in value)
    return True


# --- JDBC URLs ------------------------------------------------------------------------------------------------

JDBC_PREFIX = st.sampled_from(["jdbc:postgresql://", "JDBC:PostgreSQL://", "jdbc:postgresql:", "jdbc:oracle:thin:@",
                               "jdbc:oracle:thin:@//", "jdbc:oracle:oci:@", "jdbc:mysql://", "jdbc:", "", "string"])
JDBC_HOST = st.one_of(HOSTNAME, TEXT, st.sampled_from(["[::1]", "[", "[::1", "[zz]", "[fe80::1%eth0]", "a:b:c",
                                                       "user:pw@host", "h1,h2", "(DESCRIPTION=x)", "tcps://h"]))
JDBC_PORT = st.one_of(st.none(), PORT.map(str), st.sampled_from(["0", "65536", "-1", "\u00b2", "9" * 5000, ""]),
                      ASCII_TOKEN)
JDBC_QUERY = st.lists(st.tuples(st.sampled_from(["currentSchema", "ssl", "", "a b", "%zz"]),
                                st.one_of(IDENTIFIER, TEXT, st.sampled_from(['"Quoted"', '""', ",x", "%22x%22"]))),
                      max_size=3)


@st.composite
def jdbc_urls(draw) -> str:
    url = draw(JDBC_PREFIX) + draw(JDBC_HOST)
    if (port := draw(JDBC_PORT)) is not None:
        url += ":" + port
    url += draw(st.sampled_from(["/", ":", "", "//"])) + draw(st.one_of(IDENTIFIER, TEXT))
    if query := draw(JDBC_QUERY):
        url += "?" + "&".join(f"{k}={v}" for k, v in query)
    return url


@HOSTILE
@given(st.one_of(jdbc_urls(), JSON_TEXT, st.none(), st.integers()))
@example("jdbc:postgresql://h:\u00b2/db")
@example("jdbc:postgresql://h:" + "9" * 5000 + "/db")
@example("jdbc:oracle:thin:@h:1:")
def test_parse_jdbc_url_raises_only_value_error(url):
    try:
        target = jdbc_url.parse_jdbc_url(url)
    except ValueError as exc:
        assert str(exc)
        return
    assert target.kind in ("postgres", "oracle")
    assert target.host and 1 <= target.port <= 65535
    if target.kind == "postgres":
        assert target.database and jdbc_url._IDENTIFIER.fullmatch(target.database)
    else:
        assert bool(target.service_name) != bool(target.sid)
    assert target.schema is None or jdbc_url._IDENTIFIER.fullmatch(target.schema)
    assert target.address


@HOSTILE
@given(HOSTNAME, st.one_of(st.none(), PORT), IDENTIFIER, st.one_of(st.none(), IDENTIFIER), st.booleans())
def test_postgres_url_round_trips(host, port, database, schema, quoted):
    url = f"jdbc:postgresql://{host}{'' if port is None else f':{port}'}/{database}"
    if schema is not None:
        url += f"?currentSchema={f'%22{schema}%22' if quoted else schema}&ssl=true"
    target = jdbc_url.parse_jdbc_url(url)
    assert (target.kind, target.host, target.port, target.database) == ("postgres", host, port or 5432, database)
    expected_schema = None if schema is None else (schema if quoted else schema.lower())
    assert target.schema == expected_schema


@HOSTILE
@given(st.one_of(HOSTNAME, st.sampled_from(["::1", "fe80::1", "2001:db8::5"])), PORT,
       st.from_regex(r"[A-Za-z0-9_$#][A-Za-z0-9_$#.\-]{0,30}", fullmatch=True),
       st.from_regex(r"[A-Za-z][A-Za-z0-9_$#]{0,20}", fullmatch=True), st.booleans())
def test_oracle_url_round_trips(host, port, service, sid, use_service):
    shown = f"[{host}]" if ":" in host else host
    if use_service:
        target = jdbc_url.parse_jdbc_url(f"jdbc:oracle:thin:@//{shown}:{port}/{service}")
        assert (target.service_name, target.sid) == (service, None)
    else:
        target = jdbc_url.parse_jdbc_url(f"jdbc:oracle:thin:@{shown}:{port}:{sid}")
        assert (target.service_name, target.sid) == (None, sid)
    assert (target.kind, target.host, target.port) == ("oracle", host, port)


@HOSTILE
@given(JSON_TEXT)
def test_expected_kind_raises_only_value_error(value):
    try:
        assert jdbc_url.expected_kind(value) in ("postgres", "oracle")
    except ValueError:
        assert value.strip().upper() not in ("POSTGRES", "ORACLE")


# --- LDAP URLs, DNs, domains ----------------------------------------------------------------------------------

LDAP_URL = st.builds(
    lambda scheme, host, port, tail: f"{scheme}{host}{'' if port is None else ':' + port}{tail}",
    st.sampled_from(["ldap://", "ldaps://", "LDAPS://", "http://", "ldapi://", "", "://", "ldap:/"]),
    st.one_of(HOSTNAME, TEXT, st.sampled_from(["[::1]", "[", "[::1", "[zz]", "::1", "a@b", "[v1.x]", "h\u00e9"])),
    st.one_of(st.none(), PORT.map(str), st.sampled_from(["0", "65536", "\u00b2", "", "x", "9" * 400])),
    st.one_of(st.just(""), st.sampled_from(["/", "/dc=x", "?x", "#f", "/?"]), TEXT),
)
DN_PART = st.one_of(TEXT, st.sampled_from(["cn=admin", "dc=example", "dc=com", "ou=a\\,b", "cn=#0403", "cn=",
                                           "=x", "1.2.3=x", "cn=a+sn=b", 'o="q,uoted"', "cn=\\", "cn=\\zz"]))
DN = st.lists(DN_PART, max_size=4).map(",".join)


@HOSTILE
@given(st.one_of(LDAP_URL, JSON_TEXT, st.none()))
@example("ldap://[v1.x]")
@example("ldap://host:" + "9" * 400)
def test_parse_ldap_url_raises_only_value_error(url):
    try:
        target = ldap_settings.parse_ldap_url(url)
    except ValueError as exc:
        assert str(exc)
        return
    assert target.scheme in ("ldap", "ldaps") and target.host and 1 <= target.port <= 65535
    assert ldap_settings.parse_ldap_url(target.url) == target  # what the portal shows parses back to the same target


@HOSTILE
@given(st.sampled_from(["ldap", "ldaps"]), st.one_of(HOSTNAME, st.sampled_from(["::1", "2001:db8::1"])),
       st.one_of(st.none(), PORT))
def test_ldap_url_round_trips(scheme, host, port):
    shown = f"[{host}]" if ":" in host else host
    target = ldap_settings.parse_ldap_url(f"{scheme}://{shown}" + ("" if port is None else f":{port}"))
    assert (target.scheme, target.host, target.port) == (scheme, host, port or ldap_settings.DEFAULT_PORTS[scheme])


@HOSTILE
@given(st.one_of(LDAP_URL, TEXT), st.one_of(HOSTNAME, TEXT), st.one_of(DN, TEXT), st.one_of(st.none(), DN, TEXT),
       st.one_of(st.none(), JSON_TEXT), st.booleans())
def test_validate_ldap_settings_never_raises(url, domain, root_dn, bind_dn, password, start_tls):
    target, errors, notes = ldap_settings.validate_settings(url, domain, root_dn, bind_dn, password, start_tls)
    assert set(errors) <= {ldap_settings.URL_FIELD, ldap_settings.DOMAIN_FIELD, ldap_settings.ROOT_DN_FIELD,
                           ldap_settings.BIND_DN_FIELD, ldap_settings.PASSWORD_FIELD}
    assert all(isinstance(m, str) and m for m in [*errors.values(), *notes])
    assert target is not None or ldap_settings.URL_FIELD in errors


@HOSTILE
@given(st.one_of(DN, JSON_TEXT))
def test_dn_helpers_never_raise(value):
    problem = ldap_settings._dn_problem(value, "root DN", "dc=example,dc=com")
    assert problem is None or problem.startswith("The root DN")
    domain = ldap_settings._domain_of(value)
    assert domain is None or isinstance(domain, str)


@HOSTILE
@given(st.one_of(HOSTNAME, JSON_TEXT))
def test_domain_problem_never_raises(value):
    problem = ldap_settings._domain_problem(value)
    if problem is None:
        name = value.removesuffix(".")
        assert "." in name and len(name) <= 253 and name.isascii()


# --- the registration body ------------------------------------------------------------------------------------

FIELD_NAMES = sorted(tenant_fields.top_level()) + ["surprise", ""]
IDP_TYPES = registry.names()
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), JSON_TEXT,
                   st.sampled_from(["string", "2048", "\u00b2", "9" * 5000, "HS256", "RS256", "POSTGRES", "LDAP",
                                    "EXTERNAL", "ORACLE", " ", "inline-password", "invite-via-email"]))
JSON_VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(JSON_TEXT, inner, max_size=3)),
                          max_leaves=8)


def _section(fields: frozenset[str]):
    return st.dictionaries(st.one_of(st.sampled_from(sorted(fields)), JSON_TEXT),
                           st.one_of(JSON_VALUE, jdbc_urls(), LDAP_URL, DN, HOSTNAME), max_size=len(fields) + 1)


VALID_BASE = {"tenantId": "acme", "clientId": "acme-client", "clientSecret": "s3cret-s3cret"}
BODY = st.one_of(
    st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUE, max_size=8),
    st.fixed_dictionaries(
        {"tenantId": st.one_of(IDENTIFIER, JSON_TEXT, SCALAR), "clientId": st.one_of(IDENTIFIER, JSON_TEXT),
         "clientSecret": JSON_TEXT, "identityProviderType": st.sampled_from([*IDP_TYPES, "ldap", "x", ""])},
        optional={"tenantDomain": st.one_of(HOSTNAME, JSON_TEXT), "displayName": JSON_TEXT,
                  "supportAlgorithm": st.sampled_from([*ALGORITHMS, "hs256", "none", "\u0130"]),
                  "signingKey": st.one_of(JSON_TEXT, st.text(min_size=64, max_size=80)),
                  "rsaKeySize": st.one_of(SCALAR, st.sampled_from([2048, "3072", 4096.0, 1024])),
                  "owner": st.one_of(_section(tenant_fields.section_fields("owner")), JSON_VALUE),
                  "relationalSchema": _section(tenant_fields.section_fields("relationalSchema")),
                  "ldapSchema": _section(tenant_fields.section_fields("ldapSchema")),
                  "oidcSchema": _section(tenant_fields.section_fields("oidcSchema")),
                  "jwkSetUrl": st.one_of(JSON_TEXT, st.just("https://idp.example.com/jwks")),
                  "issuer": st.one_of(JSON_TEXT, st.just("https://idp.example.com")),
                  "skipConnectionCheck": SCALAR}),
    JSON_VALUE,
)
VALID_BODIES = [
    {**VALID_BASE, "identityProviderType": "POSTGRES", "supportAlgorithm": "HS256",
     "owner": {"username": "owner", "email": "owner@example.com", "provisioningMethod": "invite-via-email"},
     "relationalSchema": {"dataSourceURL": "jdbc:postgresql://db.example.com:5432/users?currentSchema=s",
                          "dataSourceUserName": "u", "dataSourcePassword": "p"}},
    {**VALID_BASE, "identityProviderType": "ORACLE", "tenantDomain": "acme.example.com",
     "relationalSchema": {"dataSourceURL": "jdbc:oracle:thin:@//db:1521/ORCL", "dataSourceUserName": "u",
                          "dataSourcePassword": "p"}},
    {**VALID_BASE, "identityProviderType": "LDAP", "supportAlgorithm": "HS512", "rsaKeySize": 4096,
     "ldapSchema": {"ldapURLForDirectoryService": "ldaps://ldap.example.com", "directoryServiceDomainName":
                    "example.com", "directoryServiceRootDistinguishedName": "dc=example,dc=com",
                    "bindDN": "cn=admin,dc=example,dc=com", "bindPassword": "pw", "startTLS": False}},
    {**VALID_BASE, "identityProviderType": "EXTERNAL", "supportAlgorithm": "RS256",
     "jwkSetUrl": "https://idp.example.com/jwks", "issuer": "https://idp.example.com",
     "oidcSchema": {"authUrl": "https://idp.example.com/a", "accessTokenUrl": "https://idp.example.com/t",
                    "scope": "openid profile"}},
]
HOSTILE_VALUE = st.one_of(JSON_VALUE, jdbc_urls(), LDAP_URL, DN, st.deferred(lambda: KEY_TEXT))  # defined with the keys


@st.composite
def near_valid_bodies(draw) -> dict:
    """A valid registration of each type with up to three fields (top-level or in a section) replaced,
    removed or added: most examples then get past the first check and reach the deeper ones."""
    body = json.loads(json.dumps(draw(st.sampled_from(VALID_BODIES))))
    for _ in range(draw(st.integers(0, 3))):
        holder = body
        section = draw(st.sampled_from([None, "owner", "relationalSchema", "ldapSchema", "oidcSchema"]))
        if section and isinstance(body.get(section), dict):
            holder = body[section]
        name = draw(st.one_of(st.sampled_from(sorted(holder) or ["x"]), st.sampled_from(FIELD_NAMES)))
        if draw(st.integers(0, 4)) == 0:
            holder.pop(name, None)
        else:
            holder[name] = draw(HOSTILE_VALUE)
    return body


RULES = st.builds(tenant_spec.Rules, domain_suffix=st.sampled_from(["tenants.local", "", "x"]),
                  dotless_domains=st.booleans(), allow_http_urls=st.booleans())


def _assert_spec(spec: tenant_spec.TenantSpec) -> None:
    assert tenant_spec.TENANT_ID_RE.fullmatch(spec.tenant_id)
    assert spec.idp_type in IDP_TYPES and spec.algorithm in ALGORITHMS
    assert spec.rsa_key_size in signing_keys.RSA_KEY_SIZES and type(spec.rsa_key_size) is int
    assert tenant_spec.DOMAIN_RE.fullmatch(spec.domain)
    assert spec.domain.split(".")[0] not in tenant_spec.RESERVED_FIRST_LABELS
    assert _utf8_ok(vars(spec)) and _utf8_ok(vars(spec.owner) if spec.owner else {})


@HOSTILE
@given(st.one_of(BODY, near_valid_bodies()), RULES)
@example({**VALID_BASE, "rsaKeySize": "\u00b2"}, tenant_spec.Rules())
@example({**VALID_BASE, "rsaKeySize": "9" * 5000}, tenant_spec.Rules())
@example({**VALID_BASE, "rsaKeySize": [2048]}, tenant_spec.Rules())
@example({**VALID_BASE, "identityProviderType": "POSTGRES", "signingKey": "\ud800" * 40,
          "relationalSchema": {"dataSourceURL": "jdbc:postgresql://db/x", "dataSourceUserName": "u",
                               "dataSourcePassword": "p"}}, tenant_spec.Rules())
@example({**VALID_BASE, "tenantId": "atom", "identityProviderType": "POSTGRES",
          "relationalSchema": {"dataSourceURL": "jdbc:postgresql://db/x", "dataSourceUserName": "u",
                               "dataSourcePassword": "p"}}, tenant_spec.Rules())
def test_registration_body_raises_only_validation_error(body, rules):
    try:
        spec = tenant_spec.parse(body, rules)
    except ValidationError as exc:
        assert exc.errors and all(isinstance(k, str) and isinstance(v, str) and v for k, v in exc.errors.items())
        json.dumps(exc.errors)  # the API sends them as problem+json
        event(f"refused: {len(exc.errors)} field(s)" if len(exc.errors) < 3 else "refused: 3+ fields")
        return
    event("accepted")
    _assert_spec(spec)


EXISTING = st.fixed_dictionaries({
    "tenantId": st.just("acme"), "tenantDomain": st.just("acme.tenants.local"),
    "clientSecretSet": st.booleans(), "idpSecretSet": st.booleans(), "ownerPasswordSet": st.booleans(),
    "identityProviderType": st.sampled_from(IDP_TYPES)})


@HOSTILE
@given(st.one_of(BODY, near_valid_bodies()), EXISTING)
def test_update_body_raises_only_validation_error(body, existing):
    try:
        spec = tenant_spec.parse(body, tenant_spec.Rules(), existing=existing)
    except ValidationError as exc:
        assert exc.errors
        return
    assert (spec.tenant_id, spec.domain) == ("acme", "acme.tenants.local")


@HOSTILE
@given(st.from_regex(tenant_spec.TENANT_ID_RE, fullmatch=True), st.sampled_from(["tenants.local", "", "ex.com"]))
def test_default_domain_is_a_valid_domain(tenant_id, suffix):
    domain = tenant_spec.default_domain(tenant_id, tenant_spec.Rules(domain_suffix=suffix))
    assert tenant_spec.DOMAIN_RE.fullmatch(domain) and not domain.startswith(".") and ".." not in domain


# --- signing keys ---------------------------------------------------------------------------------------------

RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # generated once: RSA keys are slow
RSA_1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _pem(key, fmt=serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


KEY_PEMS = [_pem(RSA_2048), _pem(RSA_2048, serialization.PrivateFormat.TraditionalOpenSSL), _pem(RSA_1024),
            _pem(EC_KEY), RSA_2048.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.BestAvailableEncryption(b"pw")).decode(),
            RSA_2048.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()]


@st.composite
def mutated_text(draw, sources: list[str]) -> str:
    """A real PEM cut, with characters replaced, inserted or dropped."""
    text = draw(st.sampled_from(sources))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["cut", "replace", "insert", "drop"]))
        if action == "cut":
            text = text[:at]
        elif action == "replace" and at < len(text):
            text = text[:at] + draw(st.one_of(CHARS, AWKWARD)) + text[at + 1:]
        elif action == "insert":
            text = text[:at] + draw(TEXT) + text[at:]
        else:
            text = text[:at] + text[at + 8:]
    return text


KEY_TEXT = st.one_of(JSON_TEXT, st.sampled_from(KEY_PEMS), mutated_text(KEY_PEMS),
                     st.builds(lambda n, c: c * n, st.integers(0, 20000), st.sampled_from(["a", "\u00e9", "\ud800"])))


@HOSTILE
@given(st.sampled_from(ALGORITHMS), KEY_TEXT)
def test_signing_key_precheck_never_raises(algorithm, supplied):
    problem = signing_keys.precheck(algorithm, supplied)
    assert problem is None or (isinstance(problem, str) and problem)


@HOSTILE
@given(st.sampled_from(ALGORITHMS), st.one_of(st.sampled_from(KEY_PEMS), mutated_text(KEY_PEMS), TEXT))
def test_make_key_with_a_supplied_key_raises_only_key_problem(algorithm, supplied):
    assume(supplied)  # an empty key means "generate": RSA generation is too slow to repeat here
    try:
        key = signing_keys.make_key(algorithm, supplied)
    except signing_keys.KeyProblem as exc:
        assert str(exc)
        return
    assert key.algorithm == algorithm and not key.generated
    if signing_keys.is_rsa(algorithm):
        assert key.bits >= signing_keys.RSA_MIN_BITS and key.public_pem
        assert signing_keys.make_key(algorithm, key.secret).kid == key.kid  # the stored PKCS#8 imports again
    else:
        assert key.secret == supplied and len(supplied.encode()) >= signing_keys.HMAC_MIN_BYTES[algorithm]


# --- certificates: PEM and DER --------------------------------------------------------------------------------

NOW = datetime.now(UTC)


def _certificate(subject: x509.Name, issuer: x509.Name | None = None, key=EC_KEY, extensions=True) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=90)))
    if extensions:
        builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                  critical=False)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example.com")]), critical=False))
    return builder.sign(EC_KEY, hashes.SHA256())


SAMPLE = _certificate(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "LK"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'WSO2, "Inc."'),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "Root CA")]))
SAMPLE_PEM = SAMPLE.public_bytes(serialization.Encoding.PEM)
SAMPLE_DER = SAMPLE.public_bytes(serialization.Encoding.DER)
RSA_CERT = _certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")]), key=RSA_2048, extensions=False)
P12 = pkcs12.serialize_key_and_certificates(b"x", EC_KEY, SAMPLE, None, serialization.NoEncryption())
# Well-formed DER whose parts cryptography only reads on demand: a duplicated extension (KeyUsage's OID turned
# into BasicConstraints'), and a public key of an algorithm cryptography does not know (id-ecPublicKey changed).
DUPLICATE_EXTENSION_DER = SAMPLE_DER.replace(b"\x06\x03\x55\x1d\x0f", b"\x06\x03\x55\x1d\x13", 1)
UNKNOWN_KEY_DER = SAMPLE_DER.replace(bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06072a8648ce3d0209"), 1)
CERT_SOURCES = [SAMPLE_PEM, SAMPLE_DER, RSA_CERT.public_bytes(serialization.Encoding.DER), SAMPLE_PEM + SAMPLE_PEM,
                P12, _pem(EC_KEY).encode(), DUPLICATE_EXTENSION_DER, UNKNOWN_KEY_DER,
                b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"]


@st.composite
def mutated_bytes(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(CERT_SOURCES)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "flip", "insert", "drop", "prefix"]))
        if action == "cut":
            data = data[:at]
        elif action == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        elif action == "drop":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            data[:0] = draw(st.binary(max_size=16))
    return bytes(data)


UPLOAD = st.one_of(st.binary(max_size=300), mutated_bytes(), TEXT.map(lambda t: t.encode()),
                   st.builds(lambda a, b: a + SAMPLE_PEM + b, st.binary(max_size=40), st.binary(max_size=40)),
                   st.integers(0, 3).map(lambda n: SAMPLE_PEM * n * 40))


@HOSTILE
@given(UPLOAD, st.sampled_from(["", "c.pem", "c.der", "c.p12", "C.PFX", "x"]))
@example(DUPLICATE_EXTENSION_DER, "dup.der")
@example(UNKNOWN_KEY_DER, "odd.der")
def test_parse_certificates_raises_only_validation_error(data, filename):
    try:
        certs = certificates.parse_certificates(data, filename, field_name="upload")
    except ValidationError as exc:
        assert set(exc.errors) == {"upload"} and all(exc.errors.values())
        return
    assert certs
    for cert in certs:  # what the upload, the list and the detail page then do with each one
        info = certificates.describe(cert)
        assert info.thumbprint == certificates.thumbprint(cert) and info.subject == certificates.java_dn(cert.subject)
        assert len(info.thumbprint) == 95


@HOSTILE
@given(st.one_of(st.binary(max_size=200), mutated_bytes(), mutated_text(KEY_PEMS).map(str.encode)),
       st.one_of(st.none(), st.just("pw"), TEXT))
def test_parse_private_key_raises_only_validation_error(data, passphrase):
    try:
        key = certificates.parse_private_key(data, passphrase)
    except ValidationError as exc:
        assert set(exc.errors) <= {"private_key", "key_passphrase"}
        return
    assert key.public_key() is not None


# --- Java DNs -------------------------------------------------------------------------------------------------

OIDS = [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.LOCALITY_NAME,
        NameOID.STATE_OR_PROVINCE_NAME, NameOID.DOMAIN_COMPONENT, NameOID.EMAIL_ADDRESS, NameOID.USER_ID,
        NameOID.SERIAL_NUMBER, NameOID.STREET_ADDRESS, NameOID.TITLE, NameOID.GIVEN_NAME,
        x509.ObjectIdentifier("1.2.3.4.5"), x509.ObjectIdentifier("2.5.4.65")]
STRING_TYPES = [_ASN1Type.UTF8String, _ASN1Type.PrintableString, _ASN1Type.IA5String, _ASN1Type.BMPString,
                _ASN1Type.UniversalString, _ASN1Type.T61String, _ASN1Type.NumericString, _ASN1Type.VisibleString]


@st.composite
def name_attributes(draw) -> x509.NameAttribute:
    oid = draw(st.sampled_from(OIDS))
    if draw(st.integers(0, 9)) == 0:
        return x509.NameAttribute(x509.ObjectIdentifier("2.5.4.45"), draw(st.binary(min_size=1, max_size=8)),
                                  _ASN1Type.BitString)  # x500UniqueIdentifier
    value = draw(st.text(st.one_of(CHARS, AWKWARD), min_size=1, max_size=20))
    kind = draw(st.sampled_from(STRING_TYPES))
    if kind in (_ASN1Type.PrintableString, _ASN1Type.IA5String, _ASN1Type.NumericString, _ASN1Type.VisibleString):
        assume(value.isascii())
    if kind == _ASN1Type.BMPString:
        assume(all(ord(c) < 0x10000 for c in value))
    return x509.NameAttribute(oid, value, kind)


NAMES = st.lists(st.lists(name_attributes(), min_size=1, max_size=3, unique=True), max_size=4).map(
    lambda rdns: x509.Name([x509.RelativeDistinguishedName(rdn) for rdn in rdns]))


@settings(HOSTILE, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(NAMES, NAMES)
def test_java_dn_of_any_name_in_a_real_certificate(subject, issuer):
    """The names are put in a signed certificate and read back from its DER, as an upload would be."""
    try:
        cert = x509.load_der_x509_certificate(_certificate(subject, issuer).public_bytes(serialization.Encoding.DER))
    except ValueError:  # cryptography refuses to encode the value in that string type
        assume(False)
    text = certificates.java_dn(cert.subject)
    assert isinstance(text, str)
    assert len(cert.subject.rdns) == 0 or text
    info = certificates.describe(cert)
    assert info.issuer == certificates.java_dn(cert.issuer)
    assert cert_auth.issuer_matches(info.issuer, certificates.java_dn(cert.issuer))


@HOSTILE
@given(st.lists(st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12),
                min_size=1, max_size=4))
def test_java_dn_of_plain_values_is_the_rfc1779_form(values):
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, v) for v in values])
    assert certificates.java_dn(name) == ", ".join(f"OU={v}" for v in reversed(values))


# --- thumbprint mappings and IS's decision ----------------------------------------------------------------------

THUMB = st.one_of(st.just(certificates.thumbprint(SAMPLE)), st.just("*"), st.just(""), ASCII_TOKEN, TEXT,
                  st.just(certificates.thumbprint(SAMPLE).lower().replace(":", "")))
ISSUER = st.one_of(st.just(certificates.java_dn(SAMPLE.issuer)), st.just("*"), DN, TEXT)


@HOSTILE
@given(st.sampled_from(["user", "system", "other"]), ISSUER, THUMB, st.lists(TEXT, max_size=4), TEXT)
def test_mapping_validation_raises_only_validation_error(kind, issuer, thumb, users, system_user):
    data = mappings.MappingInput(issuer, thumb, tuple(users), system_user)
    try:
        clean = mappings._clean(kind, data)
    except ValidationError as exc:
        assert exc.errors
        return
    assert clean.trusted_issuer and not mappings._CONTROL.search(clean.trusted_issuer)
    assert all("," not in u and u == u.strip() for u in clean.allowed_usernames)
    findings = mapping_lint._thumbprint_findings(clean.cert_thumbprint, set()) + mapping_lint._issuer_findings(
        clean.trusted_issuer, {certificates.java_dn(SAMPLE.issuer)})
    assert all(f.level in ("error", "warning", "info") for f in findings)


@HOSTILE
@given(TEXT)
def test_split_usernames(text):
    names = mappings.split_usernames(text)
    assert all(n and n == n.strip() and "," not in n and "\n" not in n for n in names)


@HOSTILE
@given(ISSUER, THUMB, st.one_of(st.none(), TEXT),
       st.lists(st.builds(cert_auth.UserMapping, ISSUER, THUMB, st.lists(TEXT, max_size=3).map(tuple)), max_size=4),
       st.lists(st.builds(cert_auth.SystemMapping, ISSUER, THUMB, TEXT), max_size=4))
def test_cert_auth_evaluate_is_consistent(issuer, thumb, user, users, systems):
    decision = cert_auth.evaluate(issuer, thumb, user, users, systems, user_exists=lambda name: "x" not in name)
    chosen = users if decision.kind == "user" else systems
    assert decision.kind == ("user" if user and user.strip() else "system")
    if decision.ok:
        mapping = chosen[decision.mapping_index]
        assert mapping.trusted_issuer.strip() != "*" and cert_auth.issuer_matches(mapping.trusted_issuer, issuer)
    assert decision.reason and decision.steps
    assert cert_auth.tenant_of(user or "")


@HOSTILE
@given(st.one_of(DN, TEXT))
def test_normalize_dn_is_idempotent(dn):
    once = cert_auth.normalize_dn(dn)
    assert cert_auth.normalize_dn(once) == once and cert_auth.issuer_matches(dn, once)


# --- connection settings and redirects ------------------------------------------------------------------------

BASE_URL = st.builds(lambda s, h, p, path: f"{s}{h}{p}{path}",
                     st.sampled_from(["https://", "HTTPS://", "http://", "", "https:/", "https://u:p@"]),
                     st.one_of(HOSTNAME, TEXT, st.sampled_from(["[::1]", "[", "]"])),
                     st.one_of(st.just(""), PORT.map(lambda p: f":{p}"), st.sampled_from([":0", ":99999", ":x"])),
                     st.one_of(st.just(""), st.sampled_from(["/", "/t/x/", "?q", "#f"]), TEXT))


@HOSTILE
@given(st.one_of(BASE_URL, JSON_TEXT, st.none(), st.integers()))
def test_connection_base_url_normalises_or_raises_value_error(value):
    try:
        url = connections.normalise_url(value, "IS 7")
    except ValueError as exc:
        assert str(exc)
        return
    assert url.startswith("https://") and not url.endswith("/")
    assert connections.normalise_url(url, "IS 7") == url


@HOSTILE
@given(st.one_of(JSON_TEXT, st.none(), st.integers(), st.floats()))
def test_connection_field_checks_raise_only_value_error(value):
    for check in (lambda v: connections.check_text(v, "user name"), connections.check_password,
                  lambda v: connections._timeout(v, "connect", 5.0, 60.0)):
        try:
            check(value)
        except ValueError as exc:
            assert str(exc)


@HOSTILE
@given(st.one_of(st.none(), TEXT, st.builds(lambda a, b: a + b, st.sampled_from(["/", "//", "/\\", "http:", "//["]),
                                            TEXT)))
@example("//[")
@example("//]x")
def test_safe_next_stays_on_the_site(target):
    result = safe_next(target, "/home")
    if result != "/home":
        assert result == target
        as_browsers_read_it = re.sub(r"[\t\r\n]", "", result)  # browsers drop these anywhere in a URL
        assert as_browsers_read_it.startswith("/") and not as_browsers_read_it.startswith(("//", "/\\"))


# --- bulk files -----------------------------------------------------------------------------------------------

HEADER = st.lists(st.sampled_from(["tenantId", "clientId", "owner.username", "owner", "ldapSchema.startTLS",
                                   "relationalSchema.dataSourceURL", "", "a..b", "skipConnectionCheck"]),
                  min_size=1, max_size=5)


@st.composite
def csv_texts(draw) -> str:
    header = draw(HEADER)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for _ in range(draw(st.integers(0, 4))):
        writer.writerow(draw(st.lists(TEXT, min_size=max(0, len(header) - 1), max_size=len(header) + 1)))
    return out.getvalue()


BULK_DATA = st.one_of(
    st.binary(max_size=200), TEXT.map(str.encode), csv_texts().map(str.encode),
    csv_texts().map(lambda t: b"\xef\xbb\xbf" + t.encode()),
    st.lists(st.one_of(JSON_VALUE.map(json.dumps), TEXT, st.sampled_from(["[" * 5000, "1" * 5000, "{}"])),
             max_size=4).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
    st.just(b"PK\x03\x04rest"),
)


@HOSTILE
@given(st.sampled_from(["t.csv", "t.jsonl", "T.NDJSON", "t.xlsx", "", "csv"]), BULK_DATA, st.integers(1, 3))
def test_bulk_file_parsing_raises_only_file_problem(filename, data, max_rows):
    try:
        parsed = bulk_files.parse_file(filename, data, max_rows)
    except bulk_files.FileProblem as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    assert parsed.file_format in ("csv", "jsonl") and 1 <= len(parsed.rows) <= max_rows
    for row in parsed.rows:  # each row then goes through the registration validator
        assert isinstance(row.body, dict)
        with contextlib.suppress(ValidationError):
            _assert_spec(tenant_spec.parse(row.body, tenant_spec.Rules()))


FLAT_FIELDS = ["tenantId", "displayName", "clientId", "owner.username", "owner.email",
               "relationalSchema.dataSourceURL", "ldapSchema.bindDN", "ldapSchema.startTLS"]


@HOSTILE
@given(st.lists(st.dictionaries(st.sampled_from(FLAT_FIELDS), st.text(st.one_of(CHARS, AWKWARD), min_size=1,
                                                                     max_size=30), min_size=1), min_size=1, max_size=5))
def test_bulk_csv_and_jsonl_round_trip(rows):
    """Cells with quotes, commas, newlines and unicode come back exactly as a spreadsheet wrote them."""
    columns = sorted({name for row in rows for name in row})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(name, "") for name in columns])

    def nested(row: dict) -> dict:
        body: dict = {}
        for name, value in row.items():
            if name in bulk_files.boolean_columns() and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
            bulk_files._put(body, name.split("."), value)
        return body

    expected = [nested(row) for row in rows]
    parsed = bulk_files.parse_file("t.csv", out.getvalue().encode(), 10)
    assert [r.body for r in parsed.rows] == expected
    lines = "\n".join(json.dumps(body, ensure_ascii=False) for body in expected).encode()
    assert [r.body for r in bulk_files.parse_file("t.jsonl", lines, 10).rows] == expected


# --- generated TOML -------------------------------------------------------------------------------------------

TOML_VALUE = st.one_of(TEXT, st.sampled_from(['CN=RootCA, OU=IAM, O="WSO2, Inc.", C=LK', "a\\b", '"""', "'''",
                                              "$secret{x}", "[section]", "a = b\n[x]"]))


@HOSTILE
@given(TOML_VALUE, TOML_VALUE, st.one_of(st.none(), TOML_VALUE), st.booleans(), st.booleans(), st.booleans())
def test_sharing_toml_parses_back_to_the_same_values(endpoint, username, password, include, auto, skip):
    listener = wso2_config.is_listener(endpoint, username, password, include_password=include)
    sharing = wso2_config.apim_sharing(endpoint, username, password, auto_configure_key_manager=auto,
                                       skip_create_resident_key_manager=skip, include_password=include)
    dotless = wso2_config.dotless_domains()
    for doc in (listener, sharing, dotless):
        assert tomllib.loads(doc.toml) == doc.data
    joined = tomllib.loads(wso2_config.join(listener, sharing, dotless))
    assert joined == {**listener.data, **sharing.data, **dotless.data}
    properties = joined["event_listener"][0]["properties"]
    assert properties["username"] == username and properties["notification_endpoint"] == endpoint
    assert properties["password"] == ((password or "") if include else "$secret{tenant_sync_apim_password}")
    assert joined["apim"]["tenant_sharing"][0]["properties"]["identity_server_base_url"] == endpoint


MAPPING_TEXT = st.text(st.one_of(st.characters(codec="utf-8", exclude_categories=["Cc"]),
                                 st.sampled_from(list('"\\,=+#\'[]{} '))), min_size=1, max_size=40)


@pytest.fixture
def mapping_app(app):
    with app.app_context():
        yield app


@settings(HOSTILE, max_examples=max(1, HOSTILE.max_examples * 3 // 10),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["user", "system"]), MAPPING_TEXT, THUMB,
                          st.lists(MAPPING_TEXT.map(lambda t: t.replace(",", "")), max_size=3), MAPPING_TEXT),
                min_size=1, max_size=3), st.booleans())
def test_mapping_toml_parses_back_to_the_stored_values(mapping_app, entries, log_info):
    """Through the service (its validator and the database), then IS's deployment.toml block."""
    actor = Actor.cli()
    created = []
    try:
        for kind, issuer, thumb, users, system_user in entries:
            with contextlib.suppress(ValidationError):
                created.append(mappings.create_mapping(
                    kind, mappings.MappingInput(issuer, thumb, tuple(users), system_user), actor))
        parsed = tomllib.loads(mappings.deployment_toml(log_info, line="backport"))  # the line that reads it
        section = parsed[mappings.TOML_SECTION]
        assert section.get("log_client_cert_info", False) is log_info
        for kind, key in (("user", "user_thumbprint_mapping"), ("system", "system_thumbprint_mapping")):
            stored = [m for m in created if m.kind == kind]
            written = section.get(key, [])
            assert [w["trusted_issuer"] for w in written] == [m.trusted_issuer for m in stored]
            assert [w["cert_thumbprint"] for w in written] == [m.cert_thumbprint for m in stored]
            if kind == "user":
                assert [w["allowed_username"] for w in written] == [list(m.allowed_usernames) for m in stored]
            else:
                assert [w["allowed_system_user"] for w in written] == [m.allowed_system_user for m in stored]
    finally:
        for mapping in created:
            mappings.delete_mapping(mapping.id, actor)
