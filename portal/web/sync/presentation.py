"""How sync states look on the pages: the one place for their words ("synced", "running", "pending", "retrying",
"failed"), the badge's CSS class, the sentences of tooltips and the tenant page, the step of each product with its
time, and what the live pages announce (the services return states; this is their presentation).

"failed" is said only when no retry is left (the job waits for a person); while a next attempt is scheduled the
word is "retrying", with that attempt's time."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from portal.models import OutboxJob
from portal.models.outbox import FIX_HINTS
from portal.services.outbox.reads import Overview, StateView, TenantSync
from portal.web.timefmt import utc_and_relative, utc_text

BADGES = {"synced": "state-ok", "failed": "state-off", "retrying": "state-warn", "pending": "state-warn",
          "running": "state-warn"}
JOB_BADGES = {"done": "state-ok", "failed": "state-off", "discarded": "state-off"}


def word(state: StateView) -> str:
    """The state in one word: "retrying" while a failed product has a next attempt, "failed" only when not."""
    return "retrying" if state.retrying else state.status


def badge(state: StateView) -> str:
    """The badge's CSS state class."""
    return BADGES.get(word(state), "")


def describe(state: StateView, now: datetime | None = None) -> str:
    """One sentence for a badge's tooltip and the tenant page."""
    name = state.label
    if state.status == "synced":
        return f"{name} holds the registry's tenant."
    if state.status == "running":
        return f"A worker is delivering the change to {name} now."
    if state.status == "pending":
        if state.next_attempt_at is not None:  # the other product failed first: both wait for the next attempt
            return (f"The change waits to reach {name} with the next attempt, at "
                    f"{utc_and_relative(state.next_attempt_at, now)}.")
        return f"The change waits for a worker (or for an earlier change of this tenant) to reach {name}."
    text = state.error or f"{name}: failed."
    if state.retrying:
        return (f"{text} Retrying: attempt {state.attempts} failed; next attempt at "
                f"{utc_and_relative(state.next_attempt_at, now)}.")
    fix = f" Waiting for a person: {FIX_TEXT[state.fix]}, then" if state.fix in FIX_TEXT else " Waiting for a person:"
    return f"{text} Gave up after {state.attempts} attempt(s): no retry is left.{fix} use Retry now."


def step(state: StateView | None, now: datetime | None = None) -> str:
    """A product's step in a few words with its time: 'synced 2026-12-03 12:30:05 UTC (3 min ago)'."""
    if state is None:
        return "nothing sent yet"
    if state.status == "synced":
        return _with_time("synced", state.synced_at or state.updated_at, now)
    if state.retrying:
        return _with_time("retrying, next attempt", state.next_attempt_at, now)
    if state.status == "pending" and state.next_attempt_at is not None:
        return _with_time("waiting for the next attempt,", state.next_attempt_at, now)
    if state.status == "failed":
        return _with_time("failed, waiting for a person since", state.updated_at, now)
    return _with_time("being delivered since" if state.status == "running" else "waiting since", state.updated_at,
                      now)


def _with_time(text: str, when: datetime | None, now: datetime | None) -> str:
    return f"{text} {utc_and_relative(when, now)}" if when is not None else text.rstrip(",").removesuffix(" since")


def announcement(states: Mapping[str, StateView], labels: Mapping[str, str]) -> str:
    """What a screen reader hears when the tenant's state changes: each product's word, and the next attempt."""
    parts = []
    for product, name in labels.items():
        state = states.get(product)
        if state is None:
            continue
        text = f"{name}: {word(state)}"
        if state.retrying:
            text += f", next attempt at {utc_text(state.next_attempt_at)}"
        parts.append(text)
    return ". ".join(parts) + "." if parts else ""


def job_word(job: OutboxJob) -> str:
    """A job in one word: a pending job with an error is "retrying"; "failed" means it waits for a person."""
    if job.status == "pending" and job.last_error:
        return "retrying"
    return job.status


def job_badge(job: OutboxJob) -> str:
    return JOB_BADGES.get(job.status, "state-warn")


def state_json(state: StateView, now: datetime | None = None) -> dict[str, Any]:
    """One product's state for the live pages' JSON."""
    return {"status": state.status, "word": word(state), "badge": badge(state), "title": describe(state, now),
            "step": step(state, now), "retrying": state.retrying, "attempts": state.attempts,
            "nextAttemptAt": _iso(state.next_attempt_at), "updatedAt": _iso(state.updated_at),
            "syncedAt": _iso(state.synced_at)}


def tenant_version(view: TenantSync) -> str:
    """Changes whenever anything the tenant's sync card shows changes (not with the clock)."""
    return _digest([(p, s.status, s.attempts, _iso(s.updated_at), _iso(s.next_attempt_at), s.error)
                    for p, s in sorted(view.states.items())]
                   + [(j.id, j.status, j.attempts, _iso(j.updated_at)) for j in view.jobs] + [view.running])


def overview_version(overview: Overview) -> str:
    """Changes whenever anything the sync page's live part shows changes."""
    rows = [(j.id, j.status, j.attempts, _iso(j.updated_at)) for group in (overview.failed, overview.waiting,
                                                                          overview.running) for j, _ in group]
    return _digest([sorted(overview.counts.items()), rows])


def overview_announcement(overview: Overview) -> str:
    counts = overview.counts
    return (f"{counts.get('running', 0)} running, {len(overview.waiting)} retrying, "
            f"{counts.get('pending', 0) - len(overview.waiting)} waiting, {counts.get('failed', 0)} failed.")


def _digest(parts: Iterable[Any]) -> str:
    return hashlib.sha256(repr(list(parts)).encode()).hexdigest()[:16]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# What each fix hint asks of a person (the pages add the link to where it is done).
FIX_TEXT = {
    "owner": "add the tenant's owner (user name and email) on its edit page",
    "connection": "check the product connection (address, trust, credentials)",
    "permission": "give the portal's user in the product the permission the call needs",
    "mappings": "let the portal's client certificate and user pass IS 7's certificate mappings",
    "sharing": "check the sharing settings of both products",
    "reconcile": "resolve the difference on the reconcile page",
}
assert set(FIX_TEXT) == set(FIX_HINTS)
