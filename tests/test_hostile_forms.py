"""Every form of the web app, posted with random field values, never yields a 500.

Nothing here names a form: the routes come from app.url_map and the fields from the pages themselves. Every GET
page is fetched (signed in as an admin, with a tenant, a certificate, a mapping, an API client, a bulk job, a second
administrator and both product connections in place) and each <form> on it is read: its action, method, enctype and
fields with their rendered values and options. Then, for every POST route, hypothesis posts what a hostile browser
could: the page's own values, valid options, random and unicode text, NUL bytes, invalid UTF-8, very long values,
missing, repeated and extra fields, odd file names and contents, random path arguments and query strings, with a
valid CSRF token (CSRF stays on) unless it draws a broken one. GET forms get the same treatment in their query
string. New routes (the token lab, /oauth/token...) are covered as soon as they exist.

CSRF is on, so the forms run exactly as in production; the product connections point at a closed local port, so
the checks that call out fail fast."""
from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import uuid
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, quote_from_bytes, urlencode, urlsplit

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from hypothesis import HealthCheck, event, given, settings, strategies as st
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError, RequestRedirect

from portal import DatabaseIdConverter, create_app
from portal.access import MACHINE, PUBLIC, access_of
from portal.extensions import db
from portal.models import BulkJob, Certificate, ThumbprintMapping
from portal.services.admin import api_clients
from portal.services.certificates import mappings, service as certificates
from portal.services.context import Actor
from portal.services.sharing import connections
from portal.services.tenants import bulk, service as tenants
from tests import conftest
from tests.fixtures.app import empty_tables
from tests.test_hostile_parsers import SAMPLE, SAMPLE_PEM, TEXT, mutated_bytes

# Derandomized for CI; HOSTILE_RANDOM=1 and a larger HOSTILE_FORM_EXAMPLES make a bug hunt.
settings.register_profile(
    "hostile-forms", derandomize=not os.environ.get("HOSTILE_RANDOM"), database=None, deadline=None,
    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    max_examples=int(os.environ.get("HOSTILE_FORM_EXAMPLES", "6")),
)
PER_ROUTE = settings.get_profile("hostile-forms")

ADMIN = "fuzz-admin"
CLOSED_PORT_URL = "https://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once
CSRF = object()  # stands for the session's real CSRF token, known only once the example's client has signed in


# --- reading forms out of pages -------------------------------------------------------------------------------

@dataclasses.dataclass
class Field:
    name: str
    kind: str  # text, password, hidden, checkbox, radio, file, submit, select, textarea...
    value: str = ""
    options: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Form:
    source: str  # the page the form was found on
    method: str
    action: str  # path and query, fragment dropped
    multipart: bool
    fields: list[Field] = dataclasses.field(default_factory=list)

    def named(self, kinds: tuple[str, ...]) -> list[Field]:
        return [f for f in self.fields if f.kind in kinds]


class _FormParser(HTMLParser):
    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.source = source
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._textarea: Field | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "form":
            action = urlsplit(a.get("action") or self.source)
            self._form = Form(self.source, (a.get("method") or "get").upper(),
                              action.path + (f"?{action.query}" if action.query else ""),
                              a.get("enctype", "") == "multipart/form-data")
            self.forms.append(self._form)
        if self._form is None or not a.get("name"):
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            field = Field(a["name"], kind, a.get("value", "on" if kind in ("checkbox", "radio") else ""))
            same = [f for f in self._form.fields if f.name == field.name and f.kind == kind]
            if kind in ("checkbox", "radio") and same:  # a group: one field, several options
                same[0].options.append(field.value)
                return
            field.options = [field.value] if kind in ("checkbox", "radio") else []
            self._form.fields.append(field)
        elif tag == "button" and a.get("type", "submit") == "submit":
            self._form.fields.append(Field(a["name"], "submit", a.get("value", "")))
        elif tag == "select":
            self._select = Field(a["name"], "select")
            self._form.fields.append(self._select)
        elif tag == "textarea":
            self._textarea = Field(a["name"], "textarea")
            self._form.fields.append(self._textarea)
        elif tag == "option" and self._select is not None:
            self._select.options.append(a.get("value", ""))
            if "selected" in a:
                self._select.value = a.get("value", "")

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            if self._select is not None and not self._select.value and self._select.options:
                self._select.value = self._select.options[0]
            self._select = None
        elif tag == "textarea":
            self._textarea = None


# --- the world the forms act on --------------------------------------------------------------------------------

@dataclasses.dataclass
class World:
    app: Flask
    admin_id: int
    target_admin_id: int
    tenant_id: str
    app_id: str
    forms: list[Form] = dataclasses.field(default_factory=list)
    vocabulary: list[str] = dataclasses.field(default_factory=list)  # every field and query name seen

    def ensure(self) -> dict[str, list[str]]:
        """Values for path arguments, recreating what an earlier example deleted (a certificate, a mapping)."""
        with self.app.app_context():
            cert = db.session.execute(db.select(Certificate.id)).scalar()
            if cert is None:
                cert = certificates.upload_certificate("ca", SAMPLE_PEM, Actor.cli()).stored[0].id
            mapping = db.session.execute(db.select(ThumbprintMapping.id)).scalar()
            if mapping is None:
                mapping = mappings.create_mapping("user", mappings.MappingInput(
                    certificates.java_dn(SAMPLE.issuer), certificates.thumbprint(SAMPLE), ("admin",)), Actor.cli()).id
            job = db.session.execute(db.select(BulkJob.id)).scalar()
            db.session.remove()
        return {"admin_id": [str(self.target_admin_id)], "cert_id": [str(cert)], "mapping_id": [str(mapping)],
                "job_id": [str(job)], "tenant_id": [self.tenant_id], "app_id": [self.app_id],
                "product": ["is", "apim"], "kind": ["user", "system"]}


def _build_world(app: Flask) -> World:
    actor = Actor.cli()
    admin_id = conftest.create_admin(app, ADMIN, "admin")
    target_id = conftest.create_admin(app, "fuzz-target", "operator")
    with app.app_context():
        certificates.upload_certificate("ca", SAMPLE_PEM, actor)
        for product in ("is", "apim"):
            connections.save(product, {"base_url": CLOSED_PORT_URL, "auth": "basic", "username": "admin",
                                       "password": "admin", "trust_roles": ["ca"], "connect_timeout": "1",
                                       "read_timeout": "1"}, actor, check=False)
        tenants.register_tenant({
            "tenantId": "fuzz-tenant", "clientId": "fuzz-client", "clientSecret": "fuzz-client-secret-0123456789",
            "identityProviderType": "POSTGRES",
            "owner": {"username": "owner", "email": "owner@example.com", "provisioningMethod": "invite-via-email"},
            "relationalSchema": {"dataSourceURL": "jdbc:postgresql://127.0.0.1:9/users", "dataSourceUserName": "u",
                                 "dataSourcePassword": "p"}}, actor, skip_check=True)
        client, _key = api_clients.create_client("fuzz-client", actor)
        app_id = client.app_id
        for kind in ("user", "user", "system"):  # two of a kind, so the pages offer "move up" and "move down"
            mappings.create_mapping(kind, mappings.MappingInput(certificates.java_dn(SAMPLE.issuer), "*", ("admin",),
                                                                "admin"), actor)
        bulk.create_job("tenants.csv", b"tenantId,clientId\nbulk-one,c1\n", actor, dry_run=True,
                        check_connections=False)
        db.session.remove()
    return World(app, admin_id, target_id, "fuzz-tenant", app_id)


def _sign_in(app: Flask):
    client = app.test_client()
    response = conftest.login(client, ADMIN, csrf_token=conftest.csrf_token(client))
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def _url(app: Flask, endpoint: str, values: dict[str, str]) -> str | None:
    with app.test_request_context():
        try:
            return app.url_for(endpoint, **values)
        except BuildError:
            return None


def _crawl(world: World) -> None:
    """GET every page (path arguments from the world) and collect its forms and the query names of its links;
    public pages (the sign-in form) are read as an anonymous visitor sees them."""
    app = world.app
    signed_in, anonymous = _sign_in(app), app.test_client()
    args = world.ensure()
    names: set[str] = set()
    failures = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        url = _url(app, rule.endpoint, {name: args.get(name, ["1"])[0] for name in rule.arguments})
        if url is None:
            continue
        public = access_of(app.view_functions[rule.endpoint]) in (PUBLIC, MACHINE)
        response = (anonymous if public else signed_in).get(url)
        if response.status_code >= 500:
            failures.append(f"GET {url}: {response.status_code}")
        if not response.content_type.startswith("text/html"):
            continue
        parser = _FormParser(url)
        parser.feed(response.get_data(as_text=True))
        world.forms += parser.forms
        names |= {f.name for form in parser.forms for f in form.fields}
        names |= {k for link in parser.links for k, _ in parse_qsl(urlsplit(link).query, keep_blank_values=True)}
    assert not failures, failures
    world.vocabulary = sorted(names | {"next", "csrf_token"})


@pytest.fixture(scope="module")
def world(migrated_url, tmp_path_factory):
    app = create_app(conftest.test_config(
        migrated_url, tmp_path_factory.mktemp("hostile-forms"), WTF_CSRF_ENABLED=True, IDP_CHECK_TIMEOUT=1,
        USER_STORE_TIMEOUT=1, BULK_RUN_INLINE=True, IS7_BASE_URL=CLOSED_PORT_URL))
    built = _build_world(app)
    _crawl(built)
    yield built
    empty_tables(app)


# --- what a hostile browser sends ----------------------------------------------------------------------------

NUMBER = st.sampled_from(["2147483648", "9223372036854775808", "-2147483649", "1e3", "0x10", "\u00b2", "1"])
LONG = st.builds(lambda c, n: (c * n).encode(), st.sampled_from(["A", "\u00e9", "\x00", "\U0001f600", ", ", "%"]),
                 st.integers(1_000, 300_000))
VALUE = st.one_of(
    TEXT.map(str.encode),
    st.binary(max_size=40),  # invalid UTF-8 included
    LONG,
    NUMBER.map(str.encode),
    st.sampled_from([b"", b" ", b"string", b"0", b"-1", b"1e308", b"nan", b"9" * 400, b"true", b"null", b"\x00",
                     b"\xff\xfe", b"%00", b"../../etc/passwd", b"<script>alert(1)</script>", b"' OR 1=1 --",
                     b"${jndi:ldap://x}", b"{{7*7}}", b"https://127.0.0.1:9", b"jdbc:postgresql://127.0.0.1:9/x",
                     b"ldap://127.0.0.1:9", b"CN=x, O=\"a, b\"", SAMPLE_PEM]),
)
FILE_NAME = st.one_of(st.sampled_from(["cert.pem", "cert.der", "store.p12", "tenants.csv", "tenants.jsonl", "",
                                       "../../etc/passwd", 'a"b.pem', "\u00e9\u00e8.csv", "x.CSV", "noext",
                                       "a;b.pem", "a\r\nb.csv"]), TEXT)
FILE_BODY = st.one_of(st.binary(max_size=300), mutated_bytes(), st.just(SAMPLE_PEM), VALUE,
                      st.just(b"tenantId,clientId\nx,y\n"), st.just(b'{"tenantId": "x"}\n[1]\n'))
SAFE_QUERY = st.lists(st.tuples(st.one_of(st.sampled_from(["next", "direction", "show", "import", "after", "before",
                                                           "q", "limit", "certificate", "all", "t"]), TEXT),
                                st.one_of(TEXT, NUMBER, st.sampled_from(["//[", "//evil.example", "/\\x"]))),
                      max_size=3)


@st.composite
def _field_values(draw, field: Field) -> list[bytes | object]:
    """The values one field sends (none when missing, two when repeated)."""
    if field.name == "csrf_token":
        return draw(st.sampled_from([[CSRF]] * 12 + [[], [b"forged"], [CSRF, b"x"]]))
    choices = ["keep", "random", "missing", "twice"] + (["option"] * 3 if field.options else [])
    mode = draw(st.sampled_from(choices))
    if mode == "missing":
        return []
    if mode == "keep":
        return [field.value.encode()]
    if mode == "option":
        return [draw(st.sampled_from(field.options)).encode()]
    values = [draw(VALUE)]
    if mode == "twice":
        values.append(draw(st.one_of(VALUE, st.just(field.value.encode()))))
    return values


@dataclasses.dataclass
class Submission:
    url: str
    multipart: bool
    pairs: list[tuple[bytes, bytes | object]]
    files: list[tuple[bytes, bytes, bytes]]  # (field name, file name, content)


@st.composite
def _submission(draw, world: World, rule: str, rule_arguments: list[str], forms: list[Form],
                args: dict[str, list[str]]) -> Submission:
    form = draw(st.sampled_from(forms)) if forms and draw(st.integers(0, 5)) else None
    if form is None:  # no form on any page, or a post the pages would never make: names from everywhere
        names = draw(st.lists(st.sampled_from(world.vocabulary), max_size=6, unique=True))
        form = Form("", "POST", "", draw(st.booleans()), [Field(n, "text") for n in names])
        form.fields.append(Field("csrf_token", "hidden"))
    pairs: list[tuple[bytes, bytes | object]] = []
    files: list[tuple[bytes, bytes, bytes]] = []
    submits = form.named(("submit",))
    pressed = draw(st.one_of(st.none(), st.sampled_from(submits))) if submits else None
    for field in form.fields:
        if field.kind == "submit":
            if field is pressed:
                pairs.append((field.name.encode(), field.value.encode()))
        elif field.kind == "file":
            if draw(st.integers(0, 4)):
                files.append((field.name.encode(), draw(FILE_NAME).encode(), draw(FILE_BODY)))
        else:
            pairs += [(field.name.encode(), value) for value in draw(_field_values(field))]
    for name, value in draw(st.lists(st.tuples(st.one_of(st.sampled_from(world.vocabulary), TEXT), VALUE),
                                     max_size=2)):
        pairs.append((name.encode() if isinstance(name, str) else name, value))
    # The path: the form's own action, or the route with fixture or random arguments.
    random_args = draw(st.integers(0, 4)) == 0
    if form.action and not random_args:
        url = form.action
    else:
        values = {}
        for name in rule_arguments:
            values[name] = draw(st.sampled_from(args.get(name, ["1"])))
            if random_args:
                values[name] = draw(st.one_of(st.just(values[name]), st.integers(-1, 2**70).map(str),
                                              TEXT.filter(bool)))
        url = _path(rule, values)
    if query := draw(SAFE_QUERY):
        url += ("&" if "?" in url else "?") + urlencode(query)
    return Submission(url, form.multipart or bool(files), pairs, files)


def _path(rule: str, values: dict[str, str]) -> str:
    """The rule with its arguments filled in directly, past url_for's converters: "-1" and 2**70 reach the router
    as a browser would send them."""
    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", lambda m: quote(values[m.group(1)], safe=""), rule)


def _quote_header(value: bytes) -> bytes:
    """As browsers write a multipart name or filename: quotes and line breaks percent-encoded."""
    return value.replace(b"\r", b"%0D").replace(b"\n", b"%0A").replace(b'"', b"%22")


def _encode(sub: Submission, token: str) -> tuple[bytes, str]:
    pairs = [(name, token.encode() if value is CSRF else value) for name, value in sub.pairs]
    if not sub.multipart:
        body = "&".join(f"{quote_from_bytes(n, safe='')}={quote_from_bytes(v, safe='')}" for n, v in pairs)
        return body.encode(), "application/x-www-form-urlencoded"
    boundary = f"----hostile{uuid.uuid4().hex}"
    chunks = []
    for name, value in pairs:
        chunks.append(b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                      % (boundary.encode(), _quote_header(name), value))
    for name, filename, content in sub.files:
        chunks.append(b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                      b"Content-Type: application/octet-stream\r\n\r\n%s\r\n"
                      % (boundary.encode(), _quote_header(name), _quote_header(filename), content))
    chunks.append(b"--%s--\r\n" % boundary.encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _token(client, public: bool) -> str:
    """The session's CSRF token (one per session, valid for every form), from the lightest page that has one."""
    page = client.get("/login" if public else "/account/password").get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    return match.group(1) if match else ""


# --- the tests --------------------------------------------------------------------------------------------------

def _routes(method: str) -> list[tuple[str, str, list[str]]]:
    """(endpoint, rule, arguments) of every route taking `method`, read from an app built just for that."""
    with tempfile.TemporaryDirectory() as instance:
        app = create_app({"TESTING": True, "SECRET_KEY": "x" * 48, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                          "ENCRYPTION_KEY": Fernet.generate_key().decode(), "INSTANCE_PATH": instance})
    return sorted((rule.endpoint, rule.rule, sorted(rule.arguments)) for rule in app.url_map.iter_rules()
                  if method in rule.methods and rule.endpoint != "static")


POST_ROUTES = _routes("POST")


def _matches(world: World, form: Form, endpoint: str, method: str) -> bool:
    adapter = world.app.url_map.bind("localhost")
    try:
        matched, _ = adapter.match(urlsplit(form.action).path, method=method)
    except (HTTPException, RequestRedirect):
        return False
    return matched == endpoint


def _run(world: World, endpoint: str, rule: str, arguments: list[str], method: str) -> None:
    forms = [f for f in world.forms if f.method == method and _matches(world, f, endpoint, method)]
    public = access_of(world.app.view_functions[endpoint]) in (PUBLIC, MACHINE)
    seen: dict[int, int] = {}

    @PER_ROUTE
    @given(data=st.data())
    def submit_random_values(data):
        args = world.ensure()
        sub = data.draw(_submission(world, rule, arguments, forms, args), label="submission")
        client = world.app.test_client() if public else _sign_in(world.app)
        token = _token(client, public)
        if method == "GET":  # the fields go in the query string, as a browser sends a GET form
            body, _ = _encode(dataclasses.replace(sub, multipart=False, files=[]), token)
            response = client.get(sub.url + ("&" if "?" in sub.url else "?") + body.decode())
        else:
            body, content_type = _encode(sub, token)
            response = client.post(sub.url, data=body, content_type=content_type)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        event(f"{method} {endpoint}: {response.status_code}")
        assert response.status_code < 500, (sub.url, response.status_code, response.get_data(as_text=True)[:2000])

    submit_random_values()
    assert sum(seen.values()) >= min(PER_ROUTE.max_examples, 1)


@pytest.mark.parametrize(("endpoint", "rule", "arguments"), POST_ROUTES, ids=[f"{e}" for e, _, _ in POST_ROUTES])
def test_posting_random_values_never_yields_500(world, endpoint, rule, arguments):
    _run(world, endpoint, rule, arguments, "POST")


def test_every_post_route_was_found_and_most_have_forms(world):
    """The crawl found the forms: a route without one would only be fuzzed with borrowed field names."""
    with_forms = {e for e, _, _ in POST_ROUTES if any(f.method == "POST" and _matches(world, f, e, "POST")
                                                      for f in world.forms)}
    assert len(POST_ROUTES) >= 30
    assert {"auth.login", "tenants.create", "tenants.edit", "certificates.upload", "bulk.upload",
            "sharing.save", "sharing.connection_save", "certificates.mapping_new", "mtls_check.run",
            "admins.create"} <= with_forms


def test_get_forms_with_random_values_never_yield_500(world):
    """Search and filter forms (method GET): the same values, in the query string."""
    rules = {e: (r, a) for e, r, a in _routes("GET")}
    endpoints = {e for e in rules if any(f.method == "GET" and _matches(world, f, e, "GET") for f in world.forms)}
    assert {"tenants.index", "audit.index", "certificates.explain"} <= endpoints
    for endpoint in sorted(endpoints):
        _run(world, endpoint, *rules[endpoint], "GET")


def test_sign_in_with_a_broken_next_is_not_a_500(world):
    """urlsplit raises on an unbalanced IPv6 bracket: `next=//[` once turned a correct sign-in into a 500."""
    client = world.app.test_client()
    token = conftest.csrf_token(client)
    response = client.post("/login?next=//%5B", data={"username": ADMIN, "password": conftest.PASSWORD,
                                                       "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_ids_beyond_the_id_columns_are_404(world):
    """Every <int:...> route: ids past PostgreSQL's INTEGER (and SQLite's 64 bits) are no object, not a 500."""
    client = _sign_in(world.app)
    checked = 0
    for rule in world.app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, DatabaseIdConverter)]
        if not ints:
            continue
        args = {name: values[0] for name, values in world.ensure().items()}
        for huge in ("2147483648", "9223372036854775808"):
            path = _path(rule.rule, {name: huge if name in ints else args.get(name, "1") for name in rule.arguments})
            for method in sorted(rule.methods & {"GET", "POST"}):
                response = client.open(path, method=method, data={"csrf_token": _token(client, False)})
                assert response.status_code == 404, (method, path, response.status_code)
                checked += 1
    assert checked >= 10


@pytest.mark.parametrize("url", [
    "/audit/?before=2147483648", "/audit/?before=9223372036854775808", "/certificates/explain?certificate=2147483648",
    "/certificates/explain?certificate=99999999999999999999", "/certificates/mappings/new/user?certificate=2147483648",
])
def test_ids_out_of_range_in_a_query_are_not_a_500(world, url):
    assert _sign_in(world.app).get(url).status_code < 500


@pytest.mark.parametrize("url", ["/tenants/?after=%00", "/tenants/?q=a%00b", "/tenants/%00x", "/audit/?actor=%00",
                                 "/tenants/fuzz-tenant/edit?x=%00"])
def test_nul_in_an_address_is_a_400(world, url):
    """PostgreSQL refuses NUL in text: it is refused at the door, whatever the page."""
    assert _sign_in(world.app).get(url).status_code == 400


def test_nul_in_a_form_field_is_a_400(world):
    client = _sign_in(world.app)
    response = client.post("/api-clients/new", data={"csrf_token": _token(client, False), "name": "a\x00b"})
    assert response.status_code == 400
    anonymous = world.app.test_client()
    response = anonymous.post("/login", data={"csrf_token": _token(anonymous, True), "username": "x\x00",
                                              "password": "y"})
    assert response.status_code == 400
