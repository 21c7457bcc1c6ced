"""Layout and accessibility checks every browser test gets for free: each page a test navigated to is opened again
after the test at 1366 and 390 px (each kind of page once per run: its route and query names; tenant pages
by URL), and must neither scroll sideways nor have a serious or critical axe-core
violation. axe-core is the engine screen-reader audits use, vendored by the axe-playwright-python package."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import axe_playwright_python
from playwright.sync_api import Browser, BrowserContext, Page, Response

from portal.services.context import Actor
from portal.services.tenants import service as tenants

AXE_JS = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
# WCAG 2.1 A and AA rules plus axe's best practices.
AXE_RUN = """async () => await axe.run(document, {
  runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
  resultTypes: ["violations"]
})"""
SERIOUS = ("serious", "critical")
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1366, "height": 900}
WIDTHS = {"1366px": WIDE, "390px": PHONE}
SCROLL_WIDTH = "(() => { const e = document.scrollingElement; return [e.scrollWidth, e.clientWidth]; })()"
# The last elements reaching past the window's right edge (outside regions that scroll by themselves).
WIDEST = """(() => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest("[data-scroll-region]"))
  .slice(-3).map(e => e.tagName + "." + e.className + " " + (e.textContent || "").trim().slice(0, 40)).join(" | "))()"""


LONG_LABEL = "d" * 63  # the longest DNS label


def register_long_tenant(tenant_id: str = "Long_values_" + "v" * 52) -> str:
    """A tenant whose id, name, client id, directory URL and DN have nothing to break at, registered with the live
    portal, so the pages every test visits (lists, sync, audit, dashboard) show long values."""
    tenants.register_tenant({
        "tenantId": tenant_id, "displayName": "Display_" + "n" * 110, "clientId": "client_" + "c" * 120,
        "clientSecret": "long-values-client-secret-" + "s" * 20, "identityProviderType": "LDAP",
        "owner": {"username": "owner_" + "o" * 50, "email": "o" * 60 + "@example.com",
                  "provisioningMethod": "invite-via-email"},
        "ldapSchema": {"ldapURLForDirectoryService": f"ldaps://{LONG_LABEL}.{LONG_LABEL}.{LONG_LABEL}.example.com:636",
                       "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": f"ou={LONG_LABEL},ou={LONG_LABEL},dc=example,dc=com"},
    }, Actor(name="browser-long-values"), skip_check=True)
    return tenant_id


def axe_violations(page: Page, impacts: tuple[str, ...] | None = None) -> list[str]:
    """axe's violations on the page shown (of these impacts, or all), one line each with the first offenders."""
    page.evaluate(AXE_JS)
    result = page.evaluate(AXE_RUN)
    return [f"{v['id']} ({v['impact']}): {v['help']} -> "
            + "; ".join(f"{' '.join(node['target'])} {node['html'][:90]!r}" for node in v["nodes"][:3])
            for v in result["violations"] if impacts is None or v["impact"] in impacts]


def sideways_scroll(page: Page) -> str | None:
    """None when the page fits its window; else how wide it is and what sticks out."""
    scroll_width, client_width = page.evaluate(SCROLL_WIDTH)
    if scroll_width <= client_width:
        return None
    return f"scrolls sideways: {scroll_width} px wide in {client_width} px, widest: {page.evaluate(WIDEST)}"


def layout_problems(page: Page, impacts: tuple[str, ...] | None = SERIOUS) -> list[str]:
    problems = axe_violations(page, impacts)
    scroll = sideways_scroll(page)
    return problems + [scroll] if scroll else problems


@dataclass
class Visits:
    """The pages (GET, 200, HTML, in the top frame) a test's browser context navigated to, in order."""

    base_url: str
    urls: list[str] = field(default_factory=list)

    def watch(self, context: BrowserContext) -> None:
        context.on("response", self._record)

    def _record(self, response: Response) -> None:
        request = response.request
        if (request.method == "GET" and response.status == 200 and request.is_navigation_request()
                and response.frame.parent_frame is None and response.url.startswith(self.base_url)
                and "text/html" in (response.headers.get("content-type") or "")
                and response.url not in self.urls):
            self.urls.append(response.url)

    def check(self, browser: Browser, context: BrowserContext, checked: Checked) -> dict[str, list[str]]:
        """Each visited page not checked before in this run, opened again with the test's cookies in a fresh
        context at both widths: {url at width: problems}."""
        todo = {checked.kind_of(url): url for url in reversed(self.urls) if url not in checked}
        if not todo:
            return {}
        found: dict[str, list[str]] = {}
        again = browser.new_context(storage_state=context.storage_state(), viewport=WIDE)
        try:
            page = again.new_page()
            for url in todo.values():
                checked.add(url)
                for width, viewport in WIDTHS.items():
                    page.set_viewport_size(viewport)
                    response = page.goto(url)
                    if response is None or response.status != 200:
                        continue  # gone since (a decommissioned tenant): nothing left to check
                    problems = layout_problems(page)
                    if problems:
                        found[f"{url.removeprefix(self.base_url)} at {width}"] = problems
        finally:
            again.close()
        return found


# Pages whose layout depends on more than their route: each tenant's page differs by its provider type and values.
BY_URL = frozenset({"tenants.detail", "tenants.edit"})


class Checked:
    """The kinds of page (page_kind) checked at both widths in this run: the re-check after each test skips them,
    and a test that checks pages itself at both widths adds them."""

    def __init__(self, kind_of: Callable[[str], str]) -> None:
        self.kind_of, self.kinds = kind_of, set()

    def add(self, url: str) -> None:
        self.kinds.add(self.kind_of(url))

    def __contains__(self, url: str) -> bool:
        return self.kind_of(url) in self.kinds


def page_kind(app) -> Callable[[str], str]:
    """url -> its route and the names in its query (so /tenants/a and /tenants/b?x=1 differ only where the page
    can): the re-check opens each kind of page once per run rather than every URL the tests happened to visit."""
    adapter = app.url_map.bind("localhost")

    def kind(url: str) -> str:
        parts = urlsplit(url)
        try:
            endpoint, _args = adapter.match(parts.path, method="GET")
        except Exception:  # noqa: BLE001 - not a route (a redirect target outside the app): the URL itself
            return url
        if endpoint in BY_URL:
            return url
        return endpoint + "?" + ",".join(sorted(parse_qs(parts.query, keep_blank_values=True)))

    return kind


def report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{where}:\n  " + "\n  ".join(lines) for where, lines in found.items())
