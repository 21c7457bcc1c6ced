"""The operations dashboard: tenants by status, sync health, what expires within 30 days and recent changes, each
block shown only to the roles that may open the page it summarises, in a fixed number of queries."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db as _db
from portal.models import OutboxJob, Tenant
from portal.models.base import utcnow
from portal.services.admin import api_clients, dashboard
from portal.services.certificates import service as certificates
from portal.services.context import Actor
from portal.services.tenants import service as tenants
from portal.services.tokens import key_ring
from portal.web.main.views import BLOCK_PAGES
from simulators.pki import ca
from tests.api_helpers import ldap_body

ACTOR = Actor(name="dashboard-test")
BLOCK_IDS = ("dash-tenants", "dash-sync", "dash-expiring", "dash-instance", "dash-recent")


def _text(html: str, element_id: str) -> str:
    """The text of the element with this id, tags stripped (enough for the dashboard's flat sections)."""
    start = html.index(f'id="{element_id}"')
    section = html[start:html.index("</section>", start)]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section))


def _fail_job(app, tenant_id: str, error: str) -> int:
    """The worker gave up on the tenant's first job: what a person must look at."""
    with app.app_context():
        job = _db.session.execute(sa.select(OutboxJob).join(Tenant, Tenant.id == OutboxJob.tenant_id)
                                  .where(Tenant.tenant_id == tenant_id).order_by(OutboxJob.id)).scalars().first()
        job.status, job.last_error, job.attempts, job.fix = "failed", error, 8, "connection"
        _db.session.commit()
        return job.id


@pytest.fixture
def populated(app):
    """Three tenants (one inactive, one with a failed job, one with a rotated key), certificates expiring in 10 and
    90 days, and an API client whose key expires in 5 days."""
    with app.app_context():
        for tenant_id in ("dash-one", "dash-two", "dash-three"):
            tenants.register_tenant(ldap_body(tenant_id), ACTOR, skip_check=True)
        tenants.set_tenant_active("dash-two", False, ACTOR)
        key_ring.rotate("dash-three", ACTOR)
        certificates.upload_certificate("ca", ca("Expires Soon CA", days=10).pem, ACTOR, label="soon-ca")
        certificates.upload_certificate("ca", ca("Expires Later CA", days=90).pem, ACTOR, label="later-ca")
        api_clients.create_client("expiring-client", ACTOR, expires_at=utcnow() + timedelta(days=5))
    job_id = _fail_job(app, "dash-one", "IS 7: connection refused")
    return {"job_id": job_id}


def test_every_block_names_a_page_that_decides_who_sees_it():
    assert set(BLOCK_PAGES) == set(dashboard.BLOCKS)


def test_admin_sees_each_block_with_its_data(admin_client, populated):
    html = admin_client.get("/").get_data(as_text=True)
    for block in BLOCK_IDS:
        assert f'id="{block}"' in html, block
    counts = {name: int(n) for name, n in re.findall(r'data-count="(\w+)">(\d+)', html)}
    assert counts["total"] == 3 and counts["active"] == 2 and counts["inactive"] == 1
    assert counts["unverified"] == 3 and counts["decommissioning"] == 0 and counts["failed"] == 1
    assert 'href="/tenants/?status=inactive"' in html
    sync = _text(html, "dash-sync")
    assert "needs attention" in sync and "IS 7: connection refused" in sync
    assert 'href="/tenants/dash-one"' in html and f'href="/sync/jobs/{populated["job_id"]}"' in html
    expiring = _text(html, "dash-expiring")
    assert "soon-ca" in expiring and "later-ca" not in expiring and "in 8 days" in expiring  # 9 days less a moment
    assert "dash-three" in expiring and "stops validating in 23 h" in expiring  # the passive key's grace period
    assert 'href="/tenants/dash-three#keys"' in html
    assert "expiring-client" in expiring and "in 4 days" in expiring
    recent = _text(html, "dash-recent")
    assert "tenant.register" in recent or "tenant.create" in recent
    assert re.search(r'<a href="/tenants/dash-\w+" class="audit-object">tenant dash-\w+</a>', html)


def test_operator_sees_tenants_sync_and_expiry_but_no_audit_admins_or_api_clients(operator_client, populated):
    html = operator_client.get("/").get_data(as_text=True)
    for block in ("dash-tenants", "dash-sync", "dash-expiring", "dash-certificates", "dash-keys"):
        assert f'id="{block}"' in html, block
    for hidden in ("dash-recent", "dash-instance", "dash-api-clients", "expiring-client", "/audit/"):
        assert hidden not in html, hidden


def test_auditor_sees_every_block_and_no_action(auditor_client, populated):
    html = auditor_client.get("/").get_data(as_text=True)
    for block in (*BLOCK_IDS, "dash-api-clients"):
        assert f'id="{block}"' in html, block
    assert 'method="post"' not in html.split("<main>", 1)[1]


def test_an_empty_portal_says_so(admin_client):
    html = admin_client.get("/").get_data(as_text=True)
    assert "healthy" in _text(html, "dash-sync")
    assert _text(html, "dash-expiring").count("None.") == 3


def test_the_dashboard_costs_the_same_queries_for_3_or_30_tenants(app, admin_client, populated):
    few = _count_queries(app, admin_client)
    with app.app_context():
        for number in range(27):
            tenants.register_tenant(ldap_body(f"dash-more-{number}"), ACTOR, skip_check=True)
        for number in range(0, 27, 3):
            tenants.set_tenant_active(f"dash-more-{number}", False, ACTOR)
    for number in range(0, 27, 2):
        _fail_job(app, f"dash-more-{number}", "API Manager: 500")
    many = _count_queries(app, admin_client)
    assert many <= few <= 20, (few, many)  # one lookup per object type among the recent changes, at most


def _count_queries(app, client) -> int:
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    with app.app_context():
        engine = _db.engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        assert client.get("/").status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    return len(statements)
