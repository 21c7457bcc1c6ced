"""Log lines carry the request id and never a secret."""
import logging

from portal.logging import RequestContextFilter, redact
from tests.fixtures.accounts import create_admin, login


def test_redaction_patterns():
    line = redact('password=hunter2 "client_secret": "abc" Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig api_key=k1')
    assert "hunter2" not in line and "abc" not in line and "eyJhbGciOi" not in line and "k1" not in line
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----"
    assert "MIIEvQ" not in redact(f"loaded {pem} ok")


def test_filter_redacts_args_and_adds_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login %s password=%s", ("bob", "hunter2"), None)
    assert RequestContextFilter().filter(record)
    assert record.getMessage() == "login bob password=[redacted]" and record.request_id == "-"


def test_request_log_lines_have_the_request_id(app, capfd):
    with app.test_request_context(headers={"X-Request-ID": "req-log-1"}):
        app.preprocess_request()
        logging.getLogger("portal.test").warning("checking password=swordfish123")
    err = capfd.readouterr().err
    assert "[req-log-1]" in err and "swordfish123" not in err


def test_sign_in_logs_no_password(app, capfd):
    create_admin(app, "alice")
    login(app.test_client(), "alice", "wrong password typed here")
    assert "wrong password typed here" not in capfd.readouterr().err
