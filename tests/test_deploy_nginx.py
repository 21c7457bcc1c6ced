"""The deployment kit for real: Debian's nginx with deploy/nginx/tenant-portal.conf in front of gunicorn started with
deploy/gunicorn.conf.py, the portal on a fresh SQLite database, over TLS with a certificate made for the run.

The nginx configuration is the committed site file with only its ports, host name and paths replaced, and the
portal gets its proxy settings from the Environment= lines of deploy/systemd/tenant-portal.service: what is tested
is what is shipped. Everything listens on free loopback ports and lives in a temporary folder; nginx and gunicorn
run as the current user and are stopped at the end. A failing test prints the nginx and gunicorn logs.
"""
from __future__ import annotations

import ipaddress
import os
import pwd
import re
import secrets
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from requests.adapters import HTTPAdapter
from urllib3 import encode_multipart_formdata

from portal.config import DefaultConfig
from simulators.pki import ec_key

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SITE = DEPLOY / "nginx" / "tenant-portal.conf"
UNIT = DEPLOY / "systemd" / "tenant-portal.service"
NGINX = "/usr/sbin/nginx"
HOST = "localhost"
CLIENT_ADDRESS = "127.0.0.2"  # requests come from here, so the address the portal logs proves X-Forwarded-For
ADMIN = "deploy-admin"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
NGINX_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")  # $request_id: 16 random bytes in hex
MAX_CONTENT_LENGTH = DefaultConfig.MAX_CONTENT_LENGTH  # nginx's client_max_body_size must be exactly these
BULK_MAX_BYTES = DefaultConfig.BULK_MAX_BYTES
HSTS = f"max-age={DefaultConfig.HSTS_SECONDS}; includeSubDomains"


# --- the stack ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost and 127.0.0.1 signed by it: (CA file, chain, key)."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key, key = ec_key(), ec_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Deployment test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, chain, key_file = folder / "ca.pem", folder / "fullchain.pem", folder / "privkey.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_file.read_bytes())
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, chain, key_file


def unit_environment() -> dict[str, str]:
    """The Environment= assignments of the web unit (the proxy hop counts among them)."""
    env = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            env.update(item.split("=", 1) for item in shlex.split(line.removeprefix("Environment=")))
    return env


class Stack:
    """nginx (http and https ports) -> gunicorn -> the portal, with its logs in one folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.http_port, self.https_port, self.app_port = free_port(), free_port(), free_port()
        self.base = f"https://{HOST}:{self.https_port}"
        self.password = secrets.token_urlsafe(18)
        self.ca_file: Path | None = None
        self.gunicorn: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None
        self.sessions: list[requests.Session] = []  # closed at the end, never left to the garbage collector
        self.logs = {name: folder / f"{name}.log" for name in
                     ("setup", "gunicorn-access", "gunicorn-error", "nginx-access", "nginx-error", "nginx-stderr")}
        for path in self.logs.values():
            path.touch()

    # environment and configuration

    def environment(self) -> dict[str, str]:
        """The caller's environment minus anything that configures the portal or gunicorn, plus the unit's settings,
        a fresh instance folder and SQLite database (whatever database the rest of the suite runs on)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PORTAL_", "GUNICORN_"))
               and k not in ("DATABASE_URL", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "RUNTIME_DIRECTORY")}
        env.update(unit_environment())
        env.update({
            "PORTAL_INSTANCE_PATH": str(self.folder / "instance"),
            "DATABASE_URL": "sqlite:///" + str(self.folder / "portal.sqlite3"),
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
            "PORTAL_ENCRYPTION_KEY": Fernet.generate_key().decode(),  # no key files for concurrent starts to race on
            "WEB_CONCURRENCY": "2",
            # argon2id with cheap parameters: hashing cost is not what this test is about.
            "PORTAL_ARGON2_TIME_COST": "1", "PORTAL_ARGON2_MEMORY_COST": "1024", "PORTAL_ARGON2_PARALLELISM": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        })
        return env

    def site_config(self, cert: Path, key: Path) -> str:
        """The committed site file with ports, host name and paths made local; every replaced text must be there."""
        text = SITE.read_text()
        replacements = [
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"),
            ("return 301 https://$host$request_uri;", f"return 301 https://$host:{self.https_port}$request_uri;"),
            ("server 127.0.0.1:8000;", f"server 127.0.0.1:{self.app_port};"),
            ("server_name portal.example.com;", f"server_name {HOST};"),
            ("/etc/ssl/tenant-portal/fullchain.pem", str(cert)),
            ("/etc/ssl/tenant-portal/privkey.pem", str(key)),
            ("/srv/tenant-portal/portal/static/", f"{ROOT}/portal/static/"),
            ("/var/log/nginx/tenant-portal.access.log", str(self.logs["nginx-access"])),
            ("/var/log/nginx/tenant-portal.error.log", str(self.logs["nginx-error"])),
        ]
        for old, new in replacements:
            assert old in text, f"{SITE.name} no longer contains {old!r}; update this test's replacements"
            text = text.replace(old, new)
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for left in ("listen 80", "listen 443", "/srv/", "/etc/ssl/", "/var/log/"):
            assert left not in body, f"{left!r} is left in the generated nginx configuration"
        return text

    def nginx_config(self, site: Path) -> str:
        temp = self.folder / "nginx-temp"
        temp.mkdir()
        # As root, nginx would hand its workers to "nobody"; keep them as the user running the test.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        return (f"{user}worker_processes 1;\npid {self.folder}/nginx.pid;\n"
                f"error_log {self.logs['nginx-error']} notice;\ndaemon off;\n"
                "events { worker_connections 256; }\n"
                "http {\n"
                "    include /etc/nginx/mime.types;\n"
                "    default_type application/octet-stream;\n"
                f"    access_log {self.logs['nginx-access']};\n"
                + "".join(f"    {kind}_temp_path {temp}/{kind};\n"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
                + f"    include {site};\n}}\n")

    # processes

    def flask(self, env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.Popen:
        log = self.logs["setup"].open("a")
        log.write(f"$ flask {' '.join(args)}\n")
        log.flush()
        process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "portal", *args], cwd=ROOT, env=env,
                                   stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()
        process.stdin.write(stdin or "")
        process.stdin.close()
        return process

    @staticmethod
    def finish(process: subprocess.Popen, what: str, timeout: float = 120) -> None:
        try:
            process.wait(timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
        if process.returncode != 0:
            raise RuntimeError(f"{what} exited with {process.returncode}")

    def start(self) -> None:
        """Migrations, gunicorn and nginx start side by side (nothing touches the database until a request does);
        the administrator is created once the schema is there."""
        if not os.access(NGINX, os.X_OK):
            raise RuntimeError(f"{NGINX} is missing: this test runs Debian's nginx (apt-get install nginx)")
        env = self.environment()
        self.ca_file, cert, key = make_certificates(self.folder)
        site = self.folder / "tenant-portal.conf"
        site.write_text(self.site_config(cert, key))
        conf = self.folder / "nginx.conf"
        conf.write_text(self.nginx_config(site))
        nginx = [NGINX, "-p", str(self.folder), "-c", str(conf), "-e", str(self.logs["nginx-error"])]
        checked = subprocess.run([*nginx, "-t", "-q"], capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{checked.stderr}")

        upgrade = self.flask(env, "db", "upgrade")
        with self.logs["gunicorn-access"].open("w") as out, self.logs["gunicorn-error"].open("w") as err:
            self.gunicorn = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"),
                 "--bind", f"127.0.0.1:{self.app_port}"],
                cwd=self.folder, env=env, stdout=out, stderr=err, start_new_session=True)
        with self.logs["nginx-stderr"].open("w") as err:
            self.nginx = subprocess.Popen(nginx, cwd=self.folder, stdout=err, stderr=err, start_new_session=True)
        self.finish(upgrade, "flask db upgrade")
        self.finish(self.flask(env, "create-admin", "--username", ADMIN, "--role", "admin",
                               stdin=self.password + "\n"), "flask create-admin")

        self.wait_for_port(self.https_port, self.nginx, "nginx")
        self.wait_for_port(self.http_port, self.nginx, "nginx")
        self.wait_for_port(self.app_port, self.gunicorn, "gunicorn")
        # The arbiter listens before its workers have imported the app: wait for an answer, first from gunicorn.
        for url in (f"http://127.0.0.1:{self.app_port}/healthz", f"{self.base}/healthz"):
            self.wait_for_ok(url)

    def wait_for_ok(self, url: str, timeout: float = 60) -> None:
        session = self.session()
        deadline = time.monotonic() + timeout
        while True:
            if self.gunicorn.poll() is not None or self.nginx.poll() is not None:
                raise RuntimeError("gunicorn or nginx exited during start-up")
            try:
                if session.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")
            time.sleep(0.1)

    @staticmethod
    def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} during start-up")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGQUIT to nginx (graceful), SIGINT to gunicorn's arbiter (quick: a graceful stop waits out a poll
        second per worker); SIGKILL to the process group of one that lingers."""
        for session in self.sessions:
            session.close()
        for process, signum in ((self.nginx, signal.SIGQUIT), (self.gunicorn, signal.SIGINT)):
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signum)
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
            except ProcessLookupError:
                pass

    # clients and logs

    def session(self) -> requests.Session:
        """A browser stand-in that trusts the run's CA and connects from CLIENT_ADDRESS."""
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would replace `verify`, and *_PROXY must not apply here
        session.verify = str(self.ca_file)
        adapter = SourceAddressAdapter()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self.sessions.append(session)
        return session

    def sign_in(self) -> requests.Session:
        session = self.session()
        page = session.get(f"{self.base}/login", timeout=10)
        form = {"username": ADMIN, "password": self.password, "csrf_token": csrf_token(page.text)}
        response = session.post(f"{self.base}/login", data=form, headers={"Referer": f"{self.base}/login"},
                                allow_redirects=False, timeout=10)
        assert response.status_code == 302, f"sign-in answered {response.status_code}"
        return session

    def read(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def line_with(self, name: str, needle: str, timeout: float = 5) -> str:
        """The log line containing `needle`; both servers write theirs just after the response is sent."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.read(name).splitlines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no line with {needle!r} in {name}.log")
            time.sleep(0.05)

    def dump(self) -> str:
        return "\n".join(f"----- {name}.log -----\n{self.read(name)[-6000:]}" for name in self.logs)


class SourceAddressAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (CLIENT_ADDRESS, 0)
        super().init_poolmanager(*args, **kwargs)


class LogsOnFailure:
    """A pytest plugin for the module's lifetime: a failed test of this module shows the servers' logs."""

    def __init__(self, stack: Stack):
        self.stack = stack

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        if report.failed and report.nodeid.split("::")[0].endswith(Path(__file__).name):
            report.sections.append(("nginx and gunicorn logs", self.stack.dump()))


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("deploy"))
    plugin = LogsOnFailure(stack)
    request.config.pluginmanager.register(plugin, f"deploy-logs-{id(stack)}")
    try:
        try:
            stack.start()
        except Exception as exc:
            raise RuntimeError(f"the nginx + gunicorn stack did not start: {exc}\n{stack.dump()}") from exc
        yield stack
    finally:
        stack.stop()
        request.config.pluginmanager.unregister(plugin)


def rid() -> str:
    return f"deploy-test-{uuid.uuid4().hex[:12]}"


def csrf_token(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def header_values(response: requests.Response, name: str) -> list[str]:
    """Every value of a header as sent (requests joins repeated headers into one string)."""
    return response.raw.headers.getlist(name)


def cookie_attributes(set_cookie: str) -> tuple[str, dict[str, str]]:
    name_value, *attributes = [part.strip() for part in set_cookie.split(";")]
    attrs = {}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        attrs[key.lower()] = value
    return name_value.split("=", 1)[0], attrs


# --- the checks ---------------------------------------------------------------------------------------------------


def test_gunicorn_runs_with_the_kit_settings(stack):
    log = stack.read("gunicorn-error")
    assert f"Listening at: http://127.0.0.1:{stack.app_port} " in log
    assert "Using worker: gthread" in log
    assert log.count("Booting worker with pid") == 2  # WEB_CONCURRENCY


def test_plain_http_is_redirected_to_https(stack):
    response = stack.session().get(f"http://{HOST}:{stack.http_port}/tenants/?q=a%20b&page=2",
                                   allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"{stack.base}/tenants/?q=a%20b&page=2"


def test_other_host_names_never_reach_the_portal(stack):
    marker = rid()
    session = stack.session()
    with pytest.raises(requests.ConnectionError):  # nginx's 444: the connection is closed without an answer
        session.get(f"http://{HOST}:{stack.http_port}/{marker}", headers={"Host": "evil.example"},
                    allow_redirects=False, timeout=10)
    with pytest.raises(requests.ConnectionError):  # same over TLS: the name in Host picks the catch-all server
        session.get(f"{stack.base}/{marker}", headers={"Host": "evil.example"}, timeout=10)
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    context.check_hostname = False
    with (socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw,
          pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME|unrecognized name")):
        context.wrap_socket(raw, server_hostname="evil.example")
    assert '" 444 ' in stack.line_with("nginx-access", f"GET /{marker} ")
    assert marker not in stack.read("gunicorn-access")


def test_tls_protocols_and_ciphers(stack):
    def handshake(**settings) -> str:
        context = ssl.create_default_context(cafile=str(stack.ca_file))
        for name, value in settings.items():
            if name == "ciphers":
                context.set_ciphers(value)
            else:
                setattr(context, name, value)
        with (socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw,
              context.wrap_socket(raw, server_hostname=HOST) as tls):
            return f"{tls.version()} {tls.cipher()[0]}"

    assert handshake().startswith("TLSv1.3 ")
    tls12 = {"maximum_version": ssl.TLSVersion.TLSv1_2}
    assert handshake(**tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256") == "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256"
    with pytest.raises(ssl.SSLError):  # CBC without AEAD is not offered
        handshake(**tls12, ciphers="ECDHE-ECDSA-AES128-SHA")


def test_cookies_are_secure_and_the_portal_knows_its_public_origin(stack):
    """The portal's idea of its public address, https://host:port, comes from X-Forwarded-Proto/-Host. The pages
    here build no absolute URL (redirects are relative), but Flask-WTF compares the Referer of an HTTPS form post
    with exactly that origin: sign-in passes with the public origin and is refused with another port."""
    session = stack.session()
    login = session.get(f"{stack.base}/login", timeout=10)
    assert login.status_code == 200
    cookies = header_values(login, "Set-Cookie")
    assert cookies, "GET /login set no session cookie"
    for cookie in cookies:
        name, attrs = cookie_attributes(cookie)
        assert name == "__Host-portal_session"  # the prefix is only given to requests the portal sees as HTTPS
        assert "secure" in attrs and "httponly" in attrs and attrs.get("samesite") == "Lax"
        assert attrs.get("path") == "/" and "domain" not in attrs
    # One of each security header: the portal's, not repeated by nginx.
    assert header_values(login, "Strict-Transport-Security") == [HSTS]
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control",
                 "X-Request-ID"):
        assert len(header_values(login, name)) == 1, name

    form = {"username": ADMIN, "password": stack.password, "csrf_token": csrf_token(login.text)}
    wrong_origin = rid()
    refused = session.post(f"{stack.base}/login", data=form, allow_redirects=False, timeout=10,
                           headers={"Referer": f"https://{HOST}:{stack.https_port + 1}/login",
                                    "X-Request-ID": wrong_origin})
    assert refused.status_code == 400
    assert "The referrer does not match the host." in stack.line_with("gunicorn-error", f"[{wrong_origin}]")

    signed_in = session.post(f"{stack.base}/login", data=form, allow_redirects=False, timeout=10,
                             headers={"Referer": f"{stack.base}/login"})
    assert signed_in.status_code == 302
    location = signed_in.headers["Location"]
    assert location.startswith("/") or location.startswith(f"{stack.base}/"), location
    for cookie in header_values(signed_in, "Set-Cookie"):
        name, attrs = cookie_attributes(cookie)
        assert name.startswith("__Host-") and "secure" in attrs and "httponly" in attrs, cookie
    dashboard = session.get(f"{stack.base}/", timeout=10)
    assert dashboard.status_code == 200 and dashboard.url == f"{stack.base}/"
    assert ADMIN in dashboard.text
    # X-Forwarded-For: gunicorn's access line (after ProxyFix) names the client, not nginx's 127.0.0.1.
    line = stack.line_with("gunicorn-access", dashboard.headers["X-Request-ID"])
    assert line.startswith(f"{CLIENT_ADDRESS} "), line


def test_request_id_from_the_client_is_carried_to_every_log(stack):
    marker = rid()
    response = stack.session().get(f"{stack.base}/login", headers={"X-Request-ID": marker}, timeout=10)
    assert response.status_code == 200 and response.headers["X-Request-ID"] == marker
    assert '"GET /login HTTP/1.1" 200' in stack.line_with("gunicorn-access", f"rid={marker} ")
    assert '"GET /login HTTP/1.1" 200' in stack.line_with("nginx-access", f"rid={marker} ")


def test_request_id_is_made_by_nginx_otherwise(stack):
    session = stack.session()
    for sent in (None, "two words", "x" * 129):
        headers = {"X-Request-ID": sent} if sent else {}
        response = session.get(f"{stack.base}/healthz", headers=headers, timeout=10)
        made = response.headers["X-Request-ID"]
        assert made != sent and NGINX_REQUEST_ID.match(made), made
        # nginx logs the id it passed on; the portal would have made a different one had none arrived.
        assert '"GET /healthz HTTP/1.1" 200' in stack.line_with("nginx-access", f"rid={made} ")
        stack.line_with("gunicorn-access", f"rid={made} ")


def test_static_files_are_served_by_nginx(stack):
    marker = rid()
    session = stack.session()
    response = session.get(f"{stack.base}/static/css/portal.css", headers={"X-Request-ID": marker}, timeout=10)
    assert response.status_code == 200
    assert response.content == (ROOT / "portal" / "static" / "css" / "portal.css").read_bytes()
    assert response.headers["Content-Type"] == "text/css"
    assert response.headers["Server"] == "nginx"  # server_tokens off: no version
    assert response.headers["Cache-Control"] == "public, no-cache"
    assert re.fullmatch(r'(W/)?"[0-9a-f]+-[0-9a-f]+"', response.headers["ETag"])  # nginx's mtime-size ETag
    assert response.headers["Strict-Transport-Security"] == HSTS
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"] == marker
    assert "Content-Security-Policy" not in response.headers  # the portal adds it to everything it serves
    again = session.get(f"{stack.base}/static/css/portal.css", timeout=10,
                        headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    script = session.get(f"{stack.base}/static/js/portal.js", timeout=10)
    assert script.status_code == 200 and script.headers["Content-Type"] == "application/javascript"

    line = stack.line_with("nginx-access", f"rid={marker} ")
    assert '"GET /static/css/portal.css HTTP/1.1" 200' in line and line.endswith(" urt=-")  # no upstream used
    after = rid()
    session.get(f"{stack.base}/healthz", headers={"X-Request-ID": after}, timeout=10)
    stack.line_with("gunicorn-access", after)
    assert "/static/" not in stack.read("gunicorn-access")


def multipart(fields: dict, name: str, filename: str, size: int) -> tuple[bytes, str]:
    """A form with one file of `size` bytes: (body, Content-Type)."""
    return encode_multipart_formdata({**fields, name: (filename, b"x" * size, "application/octet-stream")})


def test_oversized_bodies_are_refused_by_nginx(stack):
    """nginx's caps are the portal's: one byte over is nginx's 413 (gunicorn never sees it), one byte under reaches
    the portal. (A body of exactly the cap passes nginx and gets the portal's own 413: under gunicorn, werkzeug
    refuses a body that reaches MAX_CONTENT_LENGTH.) The portal is made to read each body it gets: gunicorn drains
    at most 64 KiB of a body the app left unread and then closes, and nginx, still sending, would answer 502."""
    session = stack.session()
    marker = rid()
    response = session.post(f"{stack.base}/login", data=b"x" * (MAX_CONTENT_LENGTH + 1), timeout=30,
                            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Request-ID": marker})
    assert response.status_code == 413
    assert "<center>nginx</center>" in response.text and "Content-Security-Policy" not in response.headers
    assert '"POST /login HTTP/1.1" 413' in stack.line_with("nginx-access", f"rid={marker} ")

    admin = stack.sign_in()
    token = csrf_token(admin.get(f"{stack.base}/certificates/", timeout=10).text)
    fields = {"csrf_token": token, "role": "apim"}
    overhead = len(multipart(fields, "certificate", "big.pem", 0)[0])
    body, content_type = multipart(fields, "certificate", "big.pem", MAX_CONTENT_LENGTH - 1 - overhead)
    assert len(body) == MAX_CONTENT_LENGTH - 1
    at_limit = rid()
    response = admin.post(f"{stack.base}/certificates/", data=body, timeout=30,
                          headers={"Content-Type": content_type, "Referer": f"{stack.base}/certificates/",
                                   "X-Request-ID": at_limit})
    assert response.status_code == 400 and response.headers["X-Request-ID"] == at_limit  # the file is refused
    assert '"POST /certificates/ HTTP/1.1" 400' in stack.line_with("gunicorn-access", f"rid={at_limit} ")

    # Bulk onboarding takes up to BULK_MAX_BYTES: more than the general cap passes nginx there.
    token = csrf_token(admin.get(f"{stack.base}/tenants/bulk/", timeout=10).text)
    fields = {"csrf_token": token, "dry_run": "y"}
    bulk = rid()
    body, content_type = multipart(fields, "file", "tenants.bin", MAX_CONTENT_LENGTH + 1)
    response = admin.post(f"{stack.base}/tenants/bulk/", data=body, timeout=30,
                          headers={"Content-Type": content_type, "Referer": f"{stack.base}/tenants/bulk/",
                                   "X-Request-ID": bulk})
    assert response.status_code == 400 and "Upload a .csv or a .jsonl" in response.text, (
        f"a bulk upload over MAX_CONTENT_LENGTH but under BULK_MAX_BYTES was answered {response.status_code}")
    assert '"POST /tenants/bulk/ HTTP/1.1" 400' in stack.line_with("gunicorn-access", f"rid={bulk} ")
    too_big = rid()
    body, content_type = multipart(fields, "file", "tenants.csv", BULK_MAX_BYTES)
    response = admin.post(f"{stack.base}/tenants/bulk/", data=body, timeout=30,
                          headers={"Content-Type": content_type, "X-Request-ID": too_big})
    assert response.status_code == 413 and "<center>nginx</center>" in response.text
    assert '"POST /tenants/bulk/ HTTP/1.1" 413' in stack.line_with("nginx-access", f"rid={too_big} ")
    assert marker not in stack.read("gunicorn-access") and too_big not in stack.read("gunicorn-access")
