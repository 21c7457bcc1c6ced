"""Bulk onboarding: reading CSV and JSON Lines, dry runs, idempotent applies, progress, limits and secrecy."""
from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from portal.extensions import db as _db
from portal.models import AuditEvent, BulkJob, Tenant
from portal.models.base import utcnow
from portal.services.context import Actor
from portal.services.outbox import bulk_jobs
from portal.services.outbox.worker import Worker
from portal.services.tenants import bulk, bulk_files, service as tenants, spec as tenant_spec
from tests.conftest import create_admin, csrf_token, login

ACTOR = Actor(name="tester")


@pytest.fixture
def app(make_app):
    """Jobs run inside the request here, so a test sees the finished job right after the upload."""
    return make_app(BULK_RUN_INLINE=True)


def row(n: int, **overrides) -> dict:
    """A valid LDAP registration whose secrets are easy to search for in pages and responses."""
    body = {
        "tenantId": f"bulk-{n}", "displayName": f"Bulk {n}", "clientId": f"client-{n}",
        "clientSecret": f"CLIENT-SECRET-{n}-x7", "identityProviderType": "LDAP", "supportAlgorithm": "HS256",
        "signingKey": f"SIGNING-KEY-{n:04d}-abcdefghijklmnopqrstuvwxyz",
        "owner": {"username": f"owner{n}", "email": f"owner{n}@example.com", "provisioningMethod": "inline-password",
                  "password": f"OWNER-PASSWORD-{n}-x7"},
        "ldapSchema": {"ldapURLForDirectoryService": "ldap://127.0.0.1:1", "directoryServiceDomainName": "example.com",
                       "directoryServiceRootDistinguishedName": "dc=example,dc=com",
                       "bindDN": "cn=admin,dc=example,dc=com", "bindPassword": f"BIND-PASSWORD-{n}-x7",
                       "startTLS": True},
    }
    for path, value in overrides.items():
        *parents, last = path.split(".")
        target = body
        for name in parents:
            target = target[name]
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return body


SECRET_MARKERS = ("CLIENT-SECRET-", "SIGNING-KEY-", "OWNER-PASSWORD-", "BIND-PASSWORD-")


def _flat(body: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in body.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = "true" if value is True else "false" if value is False else str(value)
    return out


def to_csv(rows: list[dict]) -> bytes:
    flat = [_flat(r) for r in rows]
    columns = sorted({name for f in flat for name in f})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for f in flat:
        writer.writerow([f.get(name, "") for name in columns])
    return out.getvalue().encode()


def to_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def upload(client, data: bytes, name: str = "tenants.csv", *, dry_run: bool = False, check: bool = False, **kw):
    form = {"file": (io.BytesIO(data), name)}
    if dry_run:
        form["dry_run"] = "y"
    if check:
        form["check_connections"] = "y"
    form.update(kw)
    return client.post("/tenants/bulk/", data=form, content_type="multipart/form-data")


def job_id_of(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def progress(client, job_id: int) -> dict:
    response = client.get(f"/tenants/bulk/{job_id}/progress")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json


def counts(client, job_id: int) -> tuple[int, int, int, int]:
    p = progress(client, job_id)
    return p["created"], p["skipped"], p["conflicts"], p["failed"]


def tenant_ids(db) -> list[str]:
    return sorted(db.session.execute(sa.select(Tenant.tenant_id)).scalars())


# --- reading files -----------------------------------------------------------------------------------------


def test_csv_columns_become_api_fields():
    data = ("\ufefftenantId,clientSecret,owner.email,ldapSchema.startTLS,ldapSchema.bindDN,rsaKeySize\r\n"
            "a,s1,a@example.com,true,,2048\r\n"
            "\r\n"
            ",,,,,\r\n"
            "b,\"multi\nline\",b@example.com,FALSE,cn=x,\r\n").encode()
    parsed = bulk_files.parse_file("t.csv", data, 10)
    assert parsed.file_format == "csv"
    assert [r.number for r in parsed.rows] == [2, 5]  # blank rows are skipped but keep their numbers
    assert parsed.rows[0].body == {"tenantId": "a", "clientSecret": "s1", "owner": {"email": "a@example.com"},
                                   "ldapSchema": {"startTLS": True}, "rsaKeySize": "2048"}
    assert parsed.rows[1].body == {"tenantId": "b", "clientSecret": "multi\nline", "owner": {"email": "b@example.com"},
                                   "ldapSchema": {"startTLS": False, "bindDN": "cn=x"}}


def test_jsonl_rows_keep_their_line_numbers():
    data = b'{"tenantId": "a"}\n\n  \n{"tenantId": "b", "ldapSchema": {"startTLS": true}}\r\n'
    parsed = bulk_files.parse_file("t.jsonl", data, 10)
    assert parsed.file_format == "jsonl"
    assert [(r.number, r.body["tenantId"]) for r in parsed.rows] == [(1, "a"), (4, "b")]
    assert bulk_files.parse_file("t.NDJSON", data, 10).file_format == "jsonl"


def _problems(name: str, data: bytes, max_rows: int = 10) -> list[str]:
    with pytest.raises(bulk_files.FileProblem) as caught:
        bulk_files.parse_file(name, data, max_rows)
    assert caught.value.errors["file"]
    return caught.value.problems


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("tenants.xlsx", b"tenantId\na\n", ".csv or a .jsonl"),
    ("tenants.json", b'{"tenantId": "a"}\n', ".csv or a .jsonl"),
    ("tenants.csv", b"PK\x03\x04rest-of-a-zip", "spreadsheet or zip"),
    ("tenants.csv", b"tenantId\nok\ncaf\xe9\n", "Line 3 is not UTF-8"),
    ("tenants.csv", b"", "empty"),
    ("tenants.csv", b"tenantId,clientId\n", "no tenants"),
    ("tenants.csv", b"tenantId,clientId\na,b\nc\nd,e,f\n", "Row 3 has 1 cells; the header has 2"),
    ("tenants.csv", b"tenantId,tenantId\na,b\n", "'tenantId' appears twice"),
    ("tenants.csv", b"tenantId,,clientId\na,b,c\n", "column 2 has no usable field name"),
    ("tenants.csv", b"owner,owner.email\na,b\n", "'owner' is a section"),
    ("tenants.csv", b'tenantId,clientId\na,"unterminated\n', "cannot be read as CSV"),
    ("tenants.jsonl", b'{"tenantId": "a"}\n{"tenantId": \n', "Line 2 is not valid JSON"),
    ("tenants.jsonl", b'[{"tenantId": "a"}]\n', "Line 1 is an array, not an object"),
    ("tenants.jsonl", b'{"tenantId": "a"}\n"just text"\n', "Line 2 is a string, not an object"),
    ("tenants.jsonl", b"[" * 100000 + b"\n", "Line 1 is not usable JSON"),
])
def test_unreadable_files_are_refused_with_the_place(name, data, fragment):
    problems = _problems(name, data)
    assert any(fragment in p for p in problems), problems


def test_a_ragged_row_is_reported_with_the_others():
    problems = _problems("t.csv", b"a,b\n1\n1,2\n1,2,3\n")
    assert problems == ["Row 2 has 1 cells; the header has 2.", "Row 4 has 3 cells; the header has 2."]


def test_many_problems_are_listed_up_to_a_limit():
    problems = _problems("t.jsonl", b"[]\n" * 30)
    assert len(problems) == bulk_files.MAX_FILE_PROBLEMS + 1 and problems[-1] == "... and 10 more."


@pytest.mark.parametrize(("name", "make"), [("t.csv", to_csv), ("t.jsonl", to_jsonl)])
def test_files_over_the_row_cap_are_refused(name, make):
    data = make([row(n) for n in range(6)])
    assert len(bulk_files.parse_file(name, data, 6).rows) == 6
    assert "more than 5 rows" in _problems(name, data, max_rows=5)[0]


# --- comparing -----------------------------------------------------------------------------------------------


def _spec(body: dict):
    return tenant_spec.parse(body, tenants.rules())


def test_differences_compare_settings_and_secrets(app):
    with app.app_context():
        stored = tenants.register_tenant(row(1), ACTOR, skip_check=True).tenant
        assert bulk.differences(_spec(row(1)), stored) == []
        assert bulk.differences(_spec(row(1, signingKey=None)), stored) == []  # generated key: not compared
        assert bulk.differences(_spec(row(1, **{"owner.password": None, "owner.provisioningMethod": None})),
                                stored) == ["owner.provisioningMethod"]
        changed = row(1, displayName="Other", clientSecret="another-secret",
                      **{"ldapSchema.startTLS": False, "ldapSchema.bindPassword": "other-bind-password"},
                      signingKey="another-signing-key-abcdefghijklmnopqrstuvwxyz")
        assert bulk.differences(_spec(changed), stored) == [
            "displayName", "clientSecret", "ldapSchema.startTLS", "ldapSchema.bindPassword", "signingKey"]


def test_an_rsa_key_in_another_pem_encoding_is_the_same_key(app):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()).decode()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with app.app_context():
        stored = tenants.register_tenant(row(1, supportAlgorithm="RS256", signingKey=pkcs1), ACTOR,
                                         skip_check=True).tenant
        assert stored.active_key.secret != pkcs1  # stored as PKCS#8
        assert bulk.differences(_spec(row(1, supportAlgorithm="RS256", signingKey=pkcs1)), stored) == []
        assert bulk.differences(_spec(row(1, supportAlgorithm="RS256", signingKey=other)), stored) == ["signingKey"]


# --- dry run and apply through the pages -----------------------------------------------------------------------


def test_dry_run_reports_every_row_and_stores_no_tenant(admin_client, db):
    rows = [row(1), row(2, clientId="two words", **{"owner.email": "nope"}), row(3), row(4, tenantId="BULK-1"),
            row(5, **{"ldapSchema.startTLS": "yes"})]
    job_id = job_id_of(upload(admin_client, to_csv(rows), dry_run=True))
    assert counts(admin_client, job_id) == (2, 0, 0, 3)
    assert tenant_ids(db) == []
    job = db.session.get(BulkJob, job_id)
    assert job.dry_run and job.status == "done" and job.total == 5 and job.processed == 5
    by_row = {entry["row"]: entry for entry in job.report}
    assert by_row[2]["outcome"] == by_row[4]["outcome"] == "new"
    assert set(by_row[3]["errors"]) == {"clientId", "owner.email"} and by_row[3]["tenantId"] == "bulk-2"
    assert "row 2 of this file" in by_row[5]["errors"]["tenantId"]  # same id ignoring case
    assert "true or false" in by_row[6]["errors"]["ldapSchema.startTLS"]
    page = admin_client.get(f"/tenants/bulk/{job_id}").get_data(as_text=True)
    assert "owner.email" in page and "Enter a valid email address" in page and "Apply this file" in page
    actions = db.session.execute(sa.select(AuditEvent.action).where(AuditEvent.object_type == "bulk_job")).scalars()
    assert sorted(actions) == ["bulk.finish", "bulk.start"]


def test_dry_run_finds_duplicates_in_the_file_and_the_database(admin_client, app, db):
    with app.app_context():
        tenants.register_tenant(row(9, tenantDomain="taken.example.com"), ACTOR, skip_check=True)
    rows = [row(1, tenantDomain="one.example.com"), row(2, tenantDomain="one.example.com"),
            row(3, tenantDomain="taken.example.com"), row(9, tenantDomain="taken.example.com"),
            row(9, tenantDomain="taken.example.com", tenantId="BULK-9", clientId="changed")]
    job_id = job_id_of(upload(admin_client, to_jsonl(rows), "t.jsonl", dry_run=True))
    report = {e["row"]: e for e in db.session.get(BulkJob, job_id).report}
    assert [report[n]["outcome"] for n in range(1, 6)] == ["new", "failed", "failed", "skipped", "failed"]
    assert "row 1 of this file" in report[2]["errors"]["tenantDomain"]
    assert "already used by tenant bulk-9" in report[3]["errors"]["tenantDomain"]
    assert "row 4 of this file" in report[5]["errors"]["tenantId"]


def test_apply_registers_then_a_rerun_skips_and_reports_conflicts(admin_client, db):
    rows = [row(n) for n in range(1, 5)]
    first = job_id_of(upload(admin_client, to_csv(rows)))
    assert counts(admin_client, first) == (4, 0, 0, 0)
    assert tenant_ids(db) == ["bulk-1", "bulk-2", "bulk-3", "bulk-4"]
    stored = tenants.to_api(db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == "bulk-2")).scalar_one())
    assert stored["owner"]["passwordSet"] and stored["ldapSchema"]["startTLS"] is True
    assert stored["connectionCheck"]["status"] == "unchecked"  # no connection checks unless asked

    again = job_id_of(upload(admin_client, to_csv(rows)))
    assert counts(admin_client, again) == (0, 4, 0, 0)

    rows[1] = row(2, clientSecret="a-new-secret")
    rows[2] = row(3, displayName="Renamed")
    third = job_id_of(upload(admin_client, to_jsonl(rows + [row(5)]), "t.jsonl"))
    assert counts(admin_client, third) == (1, 2, 2, 0)
    report = {e["row"]: e for e in db.session.get(BulkJob, third).report}
    assert (report[2]["outcome"], list(report[2]["errors"])) == ("conflict", ["clientSecret"])
    assert (report[3]["outcome"], list(report[3]["errors"])) == ("conflict", ["displayName"])
    db.session.expire_all()
    renamed = db.session.execute(sa.select(Tenant).where(Tenant.tenant_key == "bulk-3")).scalar_one()
    assert renamed.display_name == "Bulk 3"  # conflicts are reported, never applied
    registered = db.session.execute(
        sa.select(AuditEvent.object_id).where(AuditEvent.action == "tenant.register")).scalars()
    assert sorted(registered) == ["bulk-1", "bulk-2", "bulk-3", "bulk-4", "bulk-5"]


def test_an_invalid_row_does_not_stop_the_valid_ones(operator_client, db):
    rows = [row(1), row(2, identityProviderType="MYSQL"), row(3)]
    job_id = job_id_of(upload(operator_client, to_csv(rows)))
    assert counts(operator_client, job_id) == (2, 0, 0, 1)
    assert tenant_ids(db) == ["bulk-1", "bulk-3"]
    problems = db.session.get(BulkJob, job_id).report[1]
    assert problems["row"] == 3 and "identityProviderType" in problems["errors"]
    page = operator_client.get(f"/tenants/bulk/{job_id}").get_data(as_text=True)
    assert "Choose one of ORACLE" in page
    report = operator_client.get(f"/tenants/bulk/{job_id}/report.csv")
    assert report.mimetype == "text/csv" and "attachment" in report.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert lines[0] == ["row", "tenantId", "outcome", "field", "message"]
    assert [line[:3] for line in lines[1:]] == [["2", "bulk-1", "created"], ["3", "bulk-2", "failed"],
                                                ["4", "bulk-3", "created"]]


def test_a_run_cut_short_is_completed_by_running_the_file_again(admin_client, db):
    rows = [row(n) for n in range(1, 7)]
    job_id_of(upload(admin_client, to_csv(rows[:3])))  # as if the first run had stopped after three rows
    rerun = job_id_of(upload(admin_client, to_csv(rows)))
    assert counts(admin_client, rerun) == (3, 3, 0, 0)
    assert len(tenant_ids(db)) == 6


def test_a_failed_connection_check_fails_only_its_row(admin_client, db):
    job_id = job_id_of(upload(admin_client, to_csv([row(1)]), check=True))  # nothing listens on port 1
    assert counts(admin_client, job_id) == (0, 0, 0, 1)
    errors = db.session.get(BulkJob, job_id).report[0]["errors"]
    assert "Connection check failed" in errors[""]
    assert tenant_ids(db) == []


def test_a_dry_run_is_applied_from_its_stored_rows(admin_client, db):
    dry = job_id_of(upload(admin_client, to_csv([row(1), row(2, clientId="")]), dry_run=True))
    assert tenant_ids(db) == []
    response = admin_client.post(f"/tenants/bulk/{dry}/apply")
    applied = job_id_of(response)
    assert applied != dry
    assert counts(admin_client, applied) == (1, 0, 0, 1)
    assert tenant_ids(db) == ["bulk-1"]
    job = db.session.get(BulkJob, applied)
    assert job.source_job_id == dry and not job.dry_run
    assert job.rows == "[]"  # applied: the file's secrets are not kept in the job
    assert "dry run #" in admin_client.get(f"/tenants/bulk/{applied}").get_data(as_text=True)
    refused = admin_client.post(f"/tenants/bulk/{applied}/apply", follow_redirects=True)
    assert "Only a finished dry run" in refused.get_data(as_text=True)


def test_a_job_whose_process_died_shows_as_stopped_and_can_be_resumed(admin_client, app, db):
    with app.app_context():
        job = BulkJob(filename="lost.csv", file_format="csv", dry_run=False, status="running", created_by="x",
                      rows=json.dumps([{"row": 2, "body": row(1)}]), total=1, report=[],
                      updated_at=utcnow() - timedelta(minutes=10))
        _db.session.add(job)
        _db.session.commit()
        job_id = job.id
    assert progress(admin_client, job_id)["stale"] is True
    page = admin_client.get(f"/tenants/bulk/{job_id}").get_data(as_text=True)
    assert "No progress since" in page and "Apply the file again" in page
    resumed = job_id_of(admin_client.post(f"/tenants/bulk/{job_id}/apply"))
    assert counts(admin_client, resumed) == (1, 0, 0, 0)
    assert tenant_ids(db) == ["bulk-1"]


def test_progress_json_has_the_counts(admin_client):
    job_id = job_id_of(upload(admin_client, to_csv([row(1), row(2, clientId="")])))
    assert progress(admin_client, job_id) == {
        "id": job_id, "status": "done", "dryRun": False, "total": 2, "processed": 2, "created": 1, "skipped": 0,
        "conflicts": 0, "failed": 1, "done": True, "stale": False, "error": None}
    assert admin_client.get("/tenants/bulk/999/progress").status_code == 404
    assert admin_client.get("/tenants/bulk/999").status_code == 404


def test_the_job_list_and_page(admin_client, auditor_client):
    job_id = job_id_of(upload(admin_client, to_csv([row(1)]), dry_run=True))
    listing = admin_client.get("/tenants/bulk/").get_data(as_text=True)
    assert "tenants.csv" in listing and f"/tenants/bulk/{job_id}" in listing and 'name="dry_run"' in listing
    boxes = {re.search(r' id="(\w+)"', tag)[1]: " checked " in tag
             for tag in re.findall(r'<input [^>]*type="checkbox"[^>]*>', listing)}
    assert boxes == {"dry_run": True, "check_connections": False}  # dry run is the default, checks are off
    page = admin_client.get(f"/tenants/bulk/{job_id}").get_data(as_text=True)
    assert "<progress" in page and "js/bulk.js" in page and "<script>" not in page
    assert auditor_client.get("/tenants/bulk/").status_code == 200
    assert 'type="file"' not in auditor_client.get("/tenants/bulk/").get_data(as_text=True)
    assert "Apply this file" not in auditor_client.get(f"/tenants/bulk/{job_id}").get_data(as_text=True)


def test_problems_on_the_page_are_capped_and_the_csv_has_them_all(admin_client, db):
    rows = [row(n, clientId="") for n in range(1, 8)]
    job_id = job_id_of(upload(admin_client, to_csv(rows), dry_run=True))
    job = db.session.get(BulkJob, job_id)
    shown, total = bulk.problems(job, limit=5)
    assert (len(shown), total) == (5, 7)
    assert len(admin_client.get(f"/tenants/bulk/{job_id}/report.csv").get_data(as_text=True).splitlines()) == 8


def test_upload_errors_are_shown_on_the_form(admin_client, db):
    response = upload(admin_client, b"tenantId,clientId\na\n")
    assert response.status_code == 400
    assert "Row 2 has 1 cells; the header has 2." in response.get_data(as_text=True)
    missing = admin_client.post("/tenants/bulk/", data={}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "Choose a CSV or JSON Lines file." in missing.get_data(as_text=True)
    assert db.session.execute(sa.select(sa.func.count()).select_from(BulkJob)).scalar_one() == 0


def test_file_over_the_row_cap_is_refused_on_the_form(make_app):
    app = make_app(BULK_RUN_INLINE=True, BULK_MAX_ROWS=3)
    create_admin(app, "root-admin")
    client = app.test_client()
    login(client, "root-admin")
    response = upload(client, to_csv([row(n) for n in range(4)]))
    assert response.status_code == 400 and "more than 3 rows" in response.get_data(as_text=True)


def test_uploads_may_exceed_the_app_wide_cap_up_to_the_bulk_cap(make_app, db):
    app = make_app(BULK_RUN_INLINE=True, MAX_CONTENT_LENGTH=2000, BULK_MAX_BYTES=20000)
    create_admin(app, "root-admin")
    client = app.test_client()
    login(client, "root-admin")
    data = to_csv([row(n) for n in range(1, 16)])
    assert 2000 < len(data) < 20000
    assert job_id_of(upload(client, data, dry_run=True))
    too_big = upload(client, to_csv([row(n) for n in range(1, 200)]))
    assert too_big.status_code == 413
    text = too_big.get_data(as_text=True)
    assert "The file is too large" in text and "19.5 KiB" in text and 'type="file"' in text


def test_no_secret_from_the_file_is_shown_or_stored_in_clear(admin_client, app, db):
    with app.app_context():
        tenants.register_tenant(row(3), ACTOR, skip_check=True)
    rows = [row(1), row(2, clientId="two words"), row(3, clientSecret="CLIENT-SECRET-changed")]
    dry = job_id_of(upload(admin_client, to_csv(rows), dry_run=True))
    applied = job_id_of(admin_client.post(f"/tenants/bulk/{dry}/apply"))
    seen = []
    for job_id in (dry, applied):
        seen.append(admin_client.get(f"/tenants/bulk/{job_id}").get_data(as_text=True))
        seen.append(admin_client.get(f"/tenants/bulk/{job_id}/progress").get_data(as_text=True))
        seen.append(admin_client.get(f"/tenants/bulk/{job_id}/report.csv").get_data(as_text=True))
    seen.append(admin_client.get("/tenants/bulk/").get_data(as_text=True))
    seen.append(admin_client.get("/audit/").get_data(as_text=True))
    seen.append(db.session.execute(sa.text("SELECT rows FROM bulk_job WHERE id = :id"), {"id": dry}).scalar_one())
    for text in seen:
        for marker in SECRET_MARKERS:
            assert marker not in text
    assert "clientSecret" in seen[0]  # the conflict names the field, never the value


# --- access ------------------------------------------------------------------------------------------------------


def test_auditors_read_but_cannot_upload_or_apply(admin_client, auditor_client, db):
    job_id = job_id_of(upload(admin_client, to_csv([row(1)]), dry_run=True))
    assert upload(auditor_client, to_csv([row(2)])).status_code == 403
    assert auditor_client.post(f"/tenants/bulk/{job_id}/apply").status_code == 403
    assert auditor_client.get(f"/tenants/bulk/{job_id}").status_code == 200
    assert auditor_client.get(f"/tenants/bulk/{job_id}/progress").status_code == 200
    assert db.session.execute(sa.select(sa.func.count()).select_from(BulkJob)).scalar_one() == 1
    assert tenant_ids(db) == []


def test_upload_checks_the_csrf_token_after_raising_the_cap(make_app):
    app = make_app(BULK_RUN_INLINE=True, WTF_CSRF_ENABLED=True)
    create_admin(app, "root-admin")
    client = app.test_client()
    assert login(client, "root-admin", csrf_token=csrf_token(client)).status_code == 302
    refused = upload(client, to_csv([row(1)]))
    assert refused.status_code == 400 and "form expired" in refused.get_data(as_text=True)
    token = csrf_token(client, "/tenants/bulk/")
    assert job_id_of(upload(client, to_csv([row(1)]), csrf_token=token))


# --- the worker ------------------------------------------------------------------------------------------------


def test_jobs_wait_for_the_worker_and_run_there_with_progress(make_app, db):
    """The web process only stores the job; the outbox worker's bulk thread claims and runs it, on behalf of the
    administrator who uploaded it (the audit events name them, with the upload's request id)."""
    app = make_app(BULK_RUN_INLINE=False)
    create_admin(app, "root-admin")
    client = app.test_client()
    login(client, "root-admin")
    job_id = job_id_of(upload(client, to_jsonl([row(n) for n in range(1, 31)]), "t.jsonl"))
    time.sleep(0.2)
    state = progress(client, job_id)
    assert (state["status"], state["processed"], state["done"]) == ("pending", 0, False)
    assert tenant_ids(db) == []
    assert Worker(app, concurrency=1, poll_interval=0.05).run(once=True).bulk == 1  # no product: no delivery
    state = progress(client, job_id)
    assert (state["status"], state["created"], state["processed"], state["done"]) == ("done", 30, 30, True)
    assert len(tenant_ids(db)) == 30
    with app.app_context():
        start, finish = (_db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == action)).scalar_one()
                         for action in ("bulk.start", "bulk.finish"))
        registered = _db.session.execute(sa.select(AuditEvent).where(AuditEvent.action == "tenant.register")
                                         ).scalars().all()
    assert start.actor == finish.actor == "root-admin" and finish.actor_id == start.actor_id is not None
    assert finish.request_id == start.request_id and finish.ip == start.ip
    assert len(registered) == 30 and {e.actor for e in registered} == {"root-admin"}


def test_a_worker_running_beside_the_web_process_picks_jobs_up(make_app, db):
    app = make_app(BULK_RUN_INLINE=False)
    create_admin(app, "root-admin")
    client = app.test_client()
    login(client, "root-admin")
    stop = threading.Event()
    runner = threading.Thread(target=Worker(app, concurrency=1, poll_interval=0.05).run, kwargs={"stop": stop})
    runner.start()
    try:
        job_id = job_id_of(upload(client, to_csv([row(n) for n in range(1, 6)]), dry_run=True))
        deadline = time.monotonic() + 30
        while not (state := progress(client, job_id))["done"]:
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(10)
    assert (state["status"], state["created"], state["processed"]) == ("done", 5, 5)
    assert tenant_ids(db) == []


def test_claims_take_each_pending_job_once_and_leave_stale_ones(app, db):
    with app.app_context():
        now = utcnow()
        jobs = [BulkJob(filename=f"{n}.csv", file_format="csv", dry_run=True, status="pending", created_by="x",
                        rows="[]", total=0, report=[], updated_at=now - timedelta(minutes=age))
                for n, age in enumerate((0, 0, 10))]
        _db.session.add_all(jobs)
        _db.session.commit()
        fresh, other, stale = (job.id for job in jobs)
        assert bulk_jobs.claim_waiting() == 2
        assert [bulk_jobs.claim(), bulk_jobs.claim(), bulk_jobs.claim()] == [fresh, other, None]
        assert _db.session.get(BulkJob, fresh).status == "running"
        assert _db.session.get(BulkJob, stale).status == "pending"
        assert bulk_jobs.starter(fresh) == Actor(name="x")  # no bulk.start event: the job's creator
