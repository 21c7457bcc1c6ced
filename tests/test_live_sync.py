"""Live sync (issue 16): the words and sentences of web/sync/presentation.py, readable times (web/timefmt.py), and
the live JSON of the tenant page and the sync page while a real worker delivers to the simulators: each product's
step shows as it ends, Retry is never offered while a job runs, a scheduled retry says "retrying" (with the next
attempt) rather than "failed", and the endpoints deny by default."""
from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from portal.services.outbox.reads import StateView
from portal.services.outbox.worker import Worker
from portal.web import timefmt
from portal.web.sync import presentation
from tests.sync_env import wso2
from tests.test_sync import FAST, register

NOW = datetime(2026, 12, 3, 12, 30, 5, tzinfo=UTC)
LABELS = {"is": "IS 7", "apim": "API Manager"}


def state(status: str, **extra) -> StateView:
    return StateView(extra.pop("product", "apim"), status, **extra)


# --- Times -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "text"), [
    (timedelta(minutes=59, seconds=59), "in 59 min"), (timedelta(minutes=-3, seconds=-10), "3 min ago"),
    (timedelta(seconds=20), "in under a minute"), (timedelta(seconds=-5), "under a minute ago"),
    (timedelta(hours=2, minutes=5), "in 2 h 5 min"), (timedelta(hours=-5), "5 h ago"),
    (timedelta(days=3, hours=1), "in 3 days"), (timedelta(days=-1000), "1000 days ago"),
])
def test_relative_age(offset, text):
    assert timefmt.relative(NOW + offset, NOW) == text


def test_utc_text_and_epochs():
    assert timefmt.utc_text(NOW) == "2026-12-03 12:30:05 UTC"
    assert timefmt.utc_text(NOW.replace(tzinfo=None)) == "2026-12-03 12:30:05 UTC"  # stored naive = UTC
    assert timefmt.utc_and_relative(NOW + timedelta(minutes=59, seconds=30), NOW) == \
        "2026-12-03 13:29:35 UTC (in 59 min)"
    assert timefmt.from_epoch(int(NOW.timestamp())) == NOW
    for bad in (True, "1700000000", -1, 1e20, float("nan"), None):
        assert timefmt.from_epoch(bad) is None, bad
    assert timefmt.relative(None) == "" and timefmt.utc_and_relative(None) == ""


# --- Words and sentences --------------------------------------------------------------------------------------------


def test_a_failure_with_a_next_attempt_is_retrying_not_failed():
    retrying = state("failed", error="API Manager: HTTP 500.", attempts=2, next_attempt_at=NOW + timedelta(minutes=2),
                     updated_at=NOW)
    assert presentation.word(retrying) == "retrying" and presentation.badge(retrying) == "state-warn"
    sentence = presentation.describe(retrying, NOW)
    assert "Retrying: attempt 2 failed; next attempt at 2026-12-03 12:32:05 UTC (in 2 min)." in sentence
    assert "failed" not in presentation.step(retrying, NOW)
    assert presentation.step(retrying, NOW) == "retrying, next attempt 2026-12-03 12:32:05 UTC (in 2 min)"


def test_failed_only_when_no_retry_is_left():
    gave_up = state("failed", error="IS 7: TM-60018.", attempts=1, fix="owner", updated_at=NOW - timedelta(minutes=3))
    assert presentation.word(gave_up) == "failed" and presentation.badge(gave_up) == "state-off"
    sentence = presentation.describe(gave_up, NOW)
    assert "Gave up after 1 attempt(s): no retry is left." in sentence
    assert "Waiting for a person: add the tenant's owner" in sentence
    assert presentation.step(gave_up, NOW) == \
        "failed, waiting for a person since 2026-12-03 12:27:05 UTC (3 min ago)"


def test_each_step_has_its_time():
    synced = state("synced", product="is", synced_at=NOW - timedelta(minutes=1), updated_at=NOW)
    running = state("running", updated_at=NOW - timedelta(seconds=10))
    waiting = state("pending", updated_at=NOW - timedelta(minutes=4))
    behind = state("pending", next_attempt_at=NOW + timedelta(minutes=1))  # the other product failed first
    assert presentation.step(synced, NOW) == "synced 2026-12-03 12:29:05 UTC (1 min ago)"
    assert presentation.step(running, NOW) == "being delivered since 2026-12-03 12:29:55 UTC (under a minute ago)"
    assert presentation.step(waiting, NOW) == "waiting since 2026-12-03 12:26:05 UTC (4 min ago)"
    assert presentation.step(behind, NOW) == "waiting for the next attempt, 2026-12-03 12:31:05 UTC (in 1 min)"
    assert presentation.step(state("pending"), NOW) == "waiting"
    assert presentation.step(None) == "nothing sent yet"
    assert [presentation.word(s) for s in (synced, running, waiting)] == ["synced", "running", "pending"]


def test_the_announcement_names_each_product_and_the_next_attempt():
    states = {"is": state("synced", product="is"),
              "apim": state("failed", attempts=1, next_attempt_at=NOW + timedelta(seconds=30))}
    assert presentation.announcement(states, LABELS) == \
        "IS 7: synced. API Manager: retrying, next attempt at 2026-12-03 12:30:35 UTC."
    assert presentation.announcement({}, LABELS) == ""


# --- The live endpoints, with a real worker and the simulators --------------------------------------------------------


@pytest.fixture
def env():
    with wso2() as products:
        yield products


@pytest.fixture
def slow_retry(make_app, env):
    """Deliveries to the simulators; a failed attempt's next one is a minute away, so a test sees "retrying"."""
    app = make_app(**{**FAST, "SYNC_BACKOFF_BASE": 60.0, "SYNC_BACKOFF_CAP": 120.0})
    env.connect(app)
    env.share(app, "off")
    return app


def _live(client, tenant_id: str = "acme") -> dict:
    response = client.get(f"/sync/tenants/{tenant_id}/live")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def _words(live: dict) -> dict[str, str]:
    return {product: s["word"] for product, s in live["products"].items()}


def test_steps_show_as_they_end_and_a_scheduled_retry_says_retrying(slow_retry, env, admin_client):
    register(slow_retry, "acme")
    first = _live(admin_client)
    assert _words(first) == {"is": "pending", "apim": "pending"} and first["settled"] is False
    assert 'data-sync-product="is"' in first["html"] and first["tenantId"] == "acme"
    # API Manager answers the create slowly, then with a 500: IS 7's step ends first, and the page shows it.
    env.apim.push_fault("POST", "/services/TenantMgtAdminService", 500, delay=1.5, operation="addTenant")
    worker = threading.Thread(target=Worker(slow_retry, concurrency=1, poll_interval=0.05).run,
                              kwargs={"once": True})
    worker.start()
    seen, deadline = None, time.monotonic() + 10
    while time.monotonic() < deadline and seen is None:
        live = _live(admin_client)
        if _words(live) == {"is": "synced", "apim": "running"}:
            seen = live
        time.sleep(0.05)
    worker.join(timeout=30)
    assert seen is not None, "IS 7's step never showed as done while API Manager's ran"
    assert seen["running"] is True and seen["retryable"] is False and seen["settled"] is False
    assert "Retry now" not in seen["html"] and "Retry is offered when the attempt ends" in seen["html"]
    assert seen["version"] != first["version"]

    after = _live(admin_client)
    apim = after["products"]["apim"]
    assert (apim["status"], apim["word"], apim["badge"], apim["retrying"]) == ("failed", "retrying", "state-warn", True)
    assert apim["nextAttemptAt"] and apim["step"].startswith("retrying, next attempt ")
    assert after["announce"].startswith("IS 7: synced. API Manager: retrying, next attempt at ")
    assert after["settled"] is False and after["retryable"] is True and "Retry now" in after["html"]
    assert ">failed<" not in after["html"] and ">retrying<" in after["html"]
    page = admin_client.get("/tenants/acme").get_data(as_text=True)
    assert 'data-sync-settled="false"' in page and 'aria-live="polite"' in page and "js/sync.js" in page
    listing = admin_client.get("/sync/states?t=acme").get_json()["acme"]["apim"]  # the tenant list's badges
    assert (listing["status"], listing["word"], listing["badge"]) == ("failed", "retrying", "state-warn")
    job_link = re.search(r'href="(/sync/jobs/\d+)"', after["html"]).group(1)
    job_page = admin_client.get(job_link).get_data(as_text=True)
    assert 'data-job-status="pending">retrying</span>' in job_page and "Waiting for a person" not in job_page

    assert admin_client.post("/sync/tenants/acme/retry").status_code == 302
    Worker(slow_retry, concurrency=1, poll_interval=0.05).drain(timeout=30)
    done = _live(admin_client)
    assert _words(done) == {"is": "synced", "apim": "synced"} and done["settled"] is True
    assert done["announce"] == "IS 7: synced. API Manager: synced."


def test_the_sync_page_part_follows_the_jobs(slow_retry, env, admin_client):
    register(slow_retry, "acme")
    pending = admin_client.get("/sync/live").get_json()
    assert pending["settled"] is False and pending["counts"] == {"pending": 1}
    assert "1 running" not in pending["announce"] and "1 waiting" in pending["announce"]
    page = admin_client.get("/sync/").get_data(as_text=True)
    assert 'data-sync-live-url="/sync/live"' in page and 'data-sync-settled="false"' in page
    env.apim.push_fault("POST", "/services/TenantMgtAdminService", 500, operation="addTenant")
    Worker(slow_retry, concurrency=1, poll_interval=0.05).run(once=True)
    retrying = admin_client.get("/sync/live").get_json()
    assert retrying["announce"] == "0 running, 1 retrying, 0 waiting, 0 failed." and retrying["settled"] is False
    assert "Nothing is being retried." not in retrying["html"] and "/sync/jobs/" in retrying["html"]
    assert retrying["version"] != pending["version"]
    admin_client.post("/sync/retry")
    Worker(slow_retry, concurrency=1, poll_interval=0.05).drain(timeout=30)
    settled = admin_client.get("/sync/live").get_json()
    assert settled["settled"] is True and settled["counts"] == {"done": 1}


def test_live_endpoints_deny_by_default(app, client, auditor_client, operator_client):
    with app.app_context():
        from portal.services.context import Actor
        from portal.services.tenants import service as tenants
        from tests.test_sync import body

        tenants.register_tenant(body("acme"), Actor(name="test"), skip_check=True)
    for path in ("/sync/tenants/acme/live", "/sync/live"):
        anonymous = client.get(path)
        assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
        assert anonymous.get_json(silent=True) is None
        assert operator_client.get(path).status_code == 200
    seen = _live(auditor_client)  # auditors read, but are offered no Retry
    assert "Retry now" not in seen["html"] and seen["products"]["is"]["word"] == "pending"
    assert auditor_client.get("/sync/tenants/nobody/live").status_code == 404
