"""Logging to stderr, one line per event with the request id, and a filter that redacts secrets."""
from __future__ import annotations

import logging
import logging.config
import re
import sys

from portal.hardening import request_id

_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "[redacted key]"),
    (re.compile(r"(?i)(authorization\s*[:=]\s*)(basic|bearer)\s+[^\s,;'\"]+"), r"\1\2 [redacted]"),
    (re.compile(r"(?i)((?:password|passwd|secret|api[_-]?key|token|signing_?key|client_?secret)[\"']?\s*[:=]\s*[\"']?)"
                r"[^\s,;&'\"}]+"), r"\1[redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[redacted jwt]"),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RequestContextFilter(logging.Filter):
    """Adds the request id and scrubs secrets from the final message (args included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id() or "-"
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the event (gunicorn, pytest and tools swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure(level: str = "INFO") -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": RequestContextFilter}},
        "formatters": {"line": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        }},
        "handlers": {"stderr": {
            "()": StderrHandler,
            "formatter": "line", "filters": ["context"],
        }},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {"alembic.runtime.plugins": {"level": "WARNING"}},
    })
