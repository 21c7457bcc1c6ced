"""How sync states look on the pages: the badge's CSS class and the sentence of its tooltip (the services return
states; this is their presentation)."""
from __future__ import annotations

from portal.models.outbox import FIX_HINTS
from portal.services.outbox.reads import StateView

BADGES = {"synced": "state-ok", "failed": "state-off", "pending": "state-warn", "running": "state-warn"}


def badge(state: StateView) -> str:
    """The badge's CSS state class."""
    return BADGES.get(state.status, "")


def describe(state: StateView) -> str:
    """One sentence for a badge's tooltip and the tenant page."""
    name = state.label
    if state.status == "synced":
        return f"{name} holds the registry's tenant."
    if state.status == "running":
        return f"A worker is delivering the change to {name} now."
    if state.status == "pending":
        return f"The change waits for a worker (or for an earlier change of this tenant) to reach {name}."
    text = state.error or f"{name}: failed."
    if state.next_attempt_at is not None:
        return f"{text} Attempt {state.attempts}; next attempt at {state.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC."
    fix = f" Waiting for a person: {FIX_TEXT[state.fix]}, then" if state.fix in FIX_TEXT else " Waiting for a person:"
    return f"{text} Gave up after {state.attempts} attempt(s).{fix} use Retry now."


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

