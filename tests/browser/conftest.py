"""Browser end-to-end fixtures: the portal on a real socket, wired to both WSO2 simulators with an outbox worker,
driven by Debian's Chromium through Playwright (no browser download).

One live portal serves the whole package: a fresh database (SQLite, or a throwaway PostgreSQL database when
PORTAL_TEST_PG_ADMIN_URL is set, as in tests/conftest.py), the simulators' CA and connections stored, sharing off, a
werkzeug server in a thread and a worker in a thread. Each test gets a page signed in as an administrator; the page
fails the test on any console error, uncaught exception or Content-Security-Policy violation it saw.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from portal import create_app
from portal.config import normalise_database_url
from portal.extensions import db
from portal.services.admin import admins
from portal.services.context import Actor
from portal.services.outbox.worker import Worker
from tests.browser import layout
from tests.browser.ui import ADMIN, ADMIN_PASSWORD, sign_in
from tests.sync_env import Wso2, wso2

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PG_ADMIN_URL = os.environ.get("PORTAL_TEST_PG_ADMIN_URL")
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 10_000
FAST_SYNC = {"SYNC_BACKOFF_BASE": 0.05, "SYNC_BACKOFF_CAP": 0.2, "SYNC_VERIFY_SECONDS": 2.0,
             "SYNC_POLL_INTERVAL": 0.05, "SYNC_LEASE_SECONDS": 30.0, "SYNC_MAX_ATTEMPTS": 8}

# Records every CSP violation of every document into Python (a binding survives navigations, unlike window state).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__portalCspViolation(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " in "
                              + e.documentURI + (e.sourceFile ? " (" + e.sourceFile + ":" + e.lineNumber + ")" : ""));
});
"""
FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")


# --- The live portal ---------------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:  # the access log would drown pytest's output
        pass


class BackgroundWorker:
    """The outbox worker in a thread; pause() lets a test see a change before it travels."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = threading.Event()
        worker = Worker(self.app, concurrency=2, poll_interval=0.1)
        self._thread = threading.Thread(target=worker.run, kwargs={"stop": self._stop}, name="browser-outbox",
                                        daemon=True)
        self._thread.start()

    def pause(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the outbox worker did not stop"
        self._thread = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.start()


@dataclass
class Live:
    url: str
    app: Flask
    products: Wso2
    worker: BackgroundWorker
    first_admin: str
    one_time_password: str
    screenshot_dir: Path

    def run(self, call, *args, **kwargs):
        """A service call in the live app's context (setting up data the test is not about)."""
        with self.app.app_context():
            return call(*args, **kwargs)


@contextlib.contextmanager
def _database() -> Iterator[tuple[str, Path]]:
    """A fresh database for the live portal: SQLite in a temporary folder, or a throwaway PostgreSQL database."""
    with tempfile.TemporaryDirectory(prefix="portal-browser-") as folder:
        if not PG_ADMIN_URL:
            yield f"sqlite:///{folder}/portal.sqlite3", Path(folder)
            return
        server = sa.create_engine(normalise_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        name = f"portal_browser_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.url.set(database=name).render_as_string(hide_password=False), Path(folder)
        finally:
            with server.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            server.dispose()


@pytest.fixture(scope="package")
def live(slapd, idp) -> Iterator[Live]:
    """The portal served on 127.0.0.1, with the simulators, a worker and two administrators: the bootstrapped
    first one (one-time password, to change at first sign-in) and ADMIN, who has chosen a password already.
    Package scope: the server and the worker stop as soon as the browser tests are done, before the rest of the
    suite runs."""
    shots = Path(os.environ.get("PORTAL_SCREENSHOT_DIR") or ROOT / "build" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with _database() as (url, folder), wso2() as products:
        app = create_app({
            "SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": str(folder / "instance"),
            "SECRET_KEY": secrets.token_urlsafe(48), "LOG_LEVEL": "WARNING",
            "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1,
            "OIDC_ALLOWED_NETWORKS": ["127.0.0.1/32"], "OIDC_CA_BUNDLE": str(idp.pki.ca_pem),
            "LDAP_CA_FILE": slapd.ca_file, **FAST_SYNC,
        })
        with app.app_context():
            flask_migrate.upgrade()
            first = admins.bootstrap_first_admin()
            assert first is not None
            first_admin, one_time_password = first.admin.username, first.password
            admins.create_admin(ADMIN, "admin", Actor.cli(), password=ADMIN_PASSWORD)
        products.connect(app)
        products.share(app, "off")
        with app.app_context():
            layout.register_long_tenant()  # long values on every list, sync and audit page the tests visit
        server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        serving = threading.Thread(target=server.serve_forever, name="browser-portal", daemon=True)
        serving.start()
        worker = BackgroundWorker(app)
        worker.start()
        try:
            yield Live(f"http://127.0.0.1:{server.server_port}", app, products, worker, first_admin,
                       one_time_password, shots)
        finally:
            worker.pause()
            server.shutdown()
            serving.join(timeout=10)
            server.server_close()
            with app.app_context():
                db.engine.dispose()


# --- The browser ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless; Playwright's own browser builds are never downloaded."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@dataclass
class Guard:
    """What went wrong in the browser during one test: console errors, uncaught exceptions, CSP violations.

    A form re-rendered with its errors may answer 400 (or 401, 409): Chromium logs that document's status as a
    console error. A test that submits such a form says so with allow_status(); resources (scripts, styles, fetches)
    failing still count."""

    problems: list[str] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)
    documents: dict[str, int] = field(default_factory=dict)  # main-frame URL -> status of its last response

    def allow_status(self, *statuses: int) -> None:
        self.allowed.update(statuses)

    def on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if message.type == "error":
            where = message.location.get("url", "")
            failed = FAILED_LOAD.match(text)
            if failed and int(failed.group(1)) in self.allowed and self.documents.get(where) == int(failed.group(1)):
                return
            self.problems.append(f"console error at {where}: {text}")
        elif "Content Security Policy" in text:
            self.problems.append(f"console {message.type}: {text}")

    def watch(self, context: BrowserContext) -> None:
        context.expose_binding("__portalCspViolation", lambda _source, text: self.problems.append(f"CSP: {text}"))
        context.add_init_script(CSP_LISTENER)
        context.on("page", self.watch_page)

    def watch_page(self, page: Page) -> None:
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error.name}: {error.message}"))
        page.on("response", self._remember_document)

    def _remember_document(self, response) -> None:
        if response.request.is_navigation_request() and response.frame.parent_frame is None:
            self.documents[response.url] = response.status

    def assert_clean(self) -> None:
        assert not self.problems, "the browser reported:\n" + "\n".join(self.problems)


@pytest.fixture
def guard() -> Guard:
    return Guard()


def _context(browser: Browser, guard: Guard, **kwargs) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT, **kwargs)
    context.set_default_timeout(TIMEOUT_MS)
    guard.watch(context)
    return context


@pytest.fixture(scope="package")
def admin_state(browser: Browser, live: Live) -> dict:
    """ADMIN's signed-in cookies, made once through the sign-in form and reused by every test's context."""
    probe = Guard()
    context = _context(browser, probe)
    page = context.new_page()
    sign_in(page, live.url, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(live.url + "/")
    state = context.storage_state()
    context.close()
    probe.assert_clean()
    return state


@pytest.fixture
def page(browser: Browser, live: Live, admin_state: dict, guard: Guard,
         layout_checked: layout.Checked) -> Iterator[Page]:
    """A page signed in as ADMIN. Console errors, uncaught exceptions and CSP violations fail the test, and so
    does any page it visited that scrolls sideways or fails axe at 1366 or 390 px (tests/browser/layout.py)."""
    yield from _checked_page(browser, live, guard, layout_checked, storage_state=admin_state)


@pytest.fixture
def anonymous_page(browser: Browser, live: Live, guard: Guard, layout_checked: layout.Checked) -> Iterator[Page]:
    """A page nobody is signed in on, held to the same standard."""
    yield from _checked_page(browser, live, guard, layout_checked)


@pytest.fixture(scope="package")
def layout_checked(live: Live) -> layout.Checked:
    """The kinds of page whose layout was checked already in this run: each is checked once."""
    return layout.Checked(layout.page_kind(live.app))


def _checked_page(browser: Browser, live: Live, guard: Guard, checked: layout.Checked, **kwargs) -> Iterator[Page]:
    context = _context(browser, guard, **kwargs)
    visits = layout.Visits(live.url)
    visits.watch(context)
    yield context.new_page()
    # Rendering does not depend on the database: the PostgreSQL pass of `make test` runs the tests but leaves the
    # re-check of every visited page to the SQLite pass (the accessibility and layout tests still check on both).
    found = {} if PG_ADMIN_URL else visits.check(browser, context, checked)
    context.close()
    guard.assert_clean()
    assert not found, "pages this test visited fail at 1366 or 390 px:\n" + layout.report(found)


@pytest.fixture
def screenshot(live: Live):
    """screenshot(page, name): the whole page as <screenshot dir>/<name>.png, for people to look at."""

    def take(page: Page, name: str) -> Path:
        path = live.screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
