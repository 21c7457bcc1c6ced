"""The tenant list's two costly parts, made cheap: its table rows and its filter form (issue 17).

Fifty rows through Jinja (an escape per expression, a macro call per row) were most of the list page's CPU time
(bench/README.md, "Where the time goes"). Here the rows are f-strings with markupsafe's escape: the same HTML. The
sync badges of a tenant with sync states still come from the sync/_macros.html macro, so they look as everywhere
else; tenants with none yet share the macro's answer for no states, rendered once per page.

The filter form is three WTForms fields rendered by the render_field macro: the same values give the same HTML, so
it is rendered once per distinct (search, type, status) without errors and kept, up to MAX_CACHED_FORMS per process.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import get_template_attribute, render_template
from markupsafe import Markup, escape

from portal.web.filters import when

MAX_CACHED_FORMS = 256
_ACTIVE = '<span class="badge state-ok">active</span>'
_INACTIVE = '<span class="badge state-off">inactive</span>'
_DECOMMISSIONING = (' <span class="badge state-warn" title="Being decommissioned: the worker removes it">'
                    'decommissioning</span>')
_VERIFIED = '<span class="badge state-ok">verified</span>'
_forms: dict[tuple, Markup] = {}


def rows(tenants: Iterable[Any], states: Mapping[str, Mapping], labels: Mapping[str, str], detail_base: str) -> Markup:
    """The <tr> of each listed tenant (rows of services.tenants.DISPLAY_COLUMNS plus `verified`)."""
    badges = get_template_attribute("sync/_macros.html", "sync_badges")
    nothing_sent = badges({}, labels)
    base = escape(detail_base)
    out = []
    for t in tenants:
        tenant_id = escape(t.tenant_id)
        status = (_ACTIVE if t.active else _INACTIVE) + (_DECOMMISSIONING if t.decommission_requested_at else "")
        verified = _VERIFIED if t.verified else (f'<span class="badge state-warn" title="connection check: '
                                                 f'{escape(t.check_status)}">unverified</span>')
        synced = states.get(t.tenant_key)
        out.append(
            f'<tr data-tenant-key="{escape(t.tenant_key)}">\n'
            f'    <td><a href="{base}{tenant_id}">{tenant_id}</a></td>\n'
            f'    <td>{escape(t.display_name)}</td>\n'
            f'    <td><code>{escape(t.domain)}</code></td>\n'
            f'    <td>{escape(t.idp_type)}</td>\n'
            f'    <td>{escape(t.support_algorithm)}</td>\n'
            f'    <td>{status}</td>\n'
            f'    <td>{verified}</td>\n'
            f'    <td>{badges(synced, labels) if synced else nothing_sent}</td>\n'
            f'    <td>{when(t.created_at)}</td>\n'
            '  </tr>')
    return Markup("\n  ".join(out))


def filter_fields(form) -> Markup:
    """The search form's fields (tenants/_filters.html), from the cache when these values were shown before."""
    if form.errors:
        return Markup(render_template("tenants/_filters.html", form=form))
    choices = tuple((c.value, c.label) for c in form.type.choices)
    key = (form.q.data or "", form.type.data or "", form.status.data or "", choices)
    html = _forms.get(key)
    if html is None:
        if len(_forms) >= MAX_CACHED_FORMS:
            _forms.clear()
        html = _forms[key] = Markup(render_template("tenants/_filters.html", form=form))
    return html
