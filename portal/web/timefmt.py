"""Times as people read them: UTC spelled out ("2026-12-03 12:30:05 UTC") and an age relative to now ("in 59 min",
"3 min ago"). Used by the live sync card and the token lab; minutes are the finest step, so a text polled every few
seconds does not change under a reader's eyes."""
from __future__ import annotations

from datetime import UTC, datetime

MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z, as RFC 7519 NumericDates are checked


def utc_text(value: datetime) -> str:
    """'2026-12-03 12:30:05 UTC' (a naive datetime is taken as UTC, as the models store it)."""
    return f"{as_utc(value):%Y-%m-%d %H:%M:%S} UTC"


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def from_epoch(value: object) -> datetime | None:
    """A NumericDate claim as a datetime; None for anything that is not a number in range (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    if not 0 <= value <= MAX_EPOCH:
        return None
    return datetime.fromtimestamp(value, UTC)


def _span(seconds: int) -> str:
    minutes = seconds // 60
    if minutes < 1:
        return ""
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days = hours // 24
    return f"{days} day{'s' if days != 1 else ''}"


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """'in 59 min', '3 min ago', 'in 2 h 5 min', '4 days ago'; under a minute either way: 'in under a minute' or
    'under a minute ago'. Empty for None."""
    if value is None:
        return ""
    now = as_utc(now or datetime.now(UTC))
    seconds = (as_utc(value) - now).total_seconds()
    span = _span(int(abs(seconds)))
    if seconds > 0:
        return f"in {span}" if span else "in under a minute"
    return f"{span} ago" if span else "under a minute ago"


def utc_and_relative(value: datetime | None, now: datetime | None = None) -> str:
    """'2026-12-03 12:30:05 UTC (in 59 min)', or an empty string for None."""
    return f"{utc_text(value)} ({relative(value, now)})" if value is not None else ""
