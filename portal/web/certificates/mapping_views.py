"""Thumbprint mapping pages: ordered lists with their lint, create/edit/delete/move, the IS handler line, explain a
call, and the generated IS 7 deployment.toml block."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from wtforms import SelectChoice

from portal.access import roles
from portal.models.certificate import MAPPING_KINDS
from portal.services.certificates import mapping_lint, mappings, service as certificates
from portal.services.errors import NotFound, ValidationError
from portal.web.certificates.blueprint import READERS, WRITERS, bp
from portal.web.certificates.forms import ConfigForm, ExplainForm, HandlerLineForm, MappingForm
from portal.web.forms import ConfirmForm
from portal.web.helpers import apply_errors, current_actor, or_404

TOML_FILENAME = "is7-client-certificate-authentication.toml"


def _mappings_page(line_form: HandlerLineForm, status: int = 200):
    return render_template("certificates/mappings.html", report=mapping_lint.lint(), line_form=line_form,
                           confirm=ConfirmForm()), status


@bp.get("/mappings")
@roles(*READERS)
def mapping_list():
    return _mappings_page(HandlerLineForm(line=mappings.handler_line()))


@bp.post("/mappings/handler-line")
@roles(*WRITERS)
def handler_line():
    form = HandlerLineForm()
    if form.validate_on_submit():
        try:
            value = mappings.set_handler_line(form.line.data or "", current_actor())
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            flash(f"IS handler line: {mappings.HANDLER_LINES[value]}.", "success")
            return redirect(url_for("certificates.mapping_list"))
    return _mappings_page(form, 400)


def _input(form: MappingForm) -> mappings.MappingInput:
    return mappings.MappingInput(form.trusted_issuer.data or "", form.cert_thumbprint.data or "",
                                 form.usernames(), form.allowed_system_user.data or "")


@bp.route("/mappings/new/<kind>", methods=["GET", "POST"])
@roles(*WRITERS)
def mapping_new(kind: str):
    if kind not in MAPPING_KINDS:
        abort(404, "A mapping is a user or a system mapping.")
    form = MappingForm()
    source = request.args.get("certificate", type=int)
    note = None
    if request.method == "GET" and source:
        try:
            prefill = mappings.prefill_from_certificate(source, kind)
        except NotFound as exc:
            abort(404, exc.message)
        form = MappingForm(data={"trusted_issuer": prefill.trusted_issuer, "cert_thumbprint": prefill.cert_thumbprint,
                                 "allowed_usernames": "\n".join(prefill.allowed_usernames),
                                 "allowed_system_user": prefill.allowed_system_user})
        note = mappings.PREFILL_NOTES[kind]
    if form.validate_on_submit():
        try:
            mapping = mappings.create_mapping(kind, _input(form), current_actor())
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            flash(f"{kind.capitalize()} mapping added at the end of the list.", "success")
            return redirect(url_for("certificates.mapping_list", _anchor=f"mapping-{mapping.id}"))
    status = 400 if form.errors or getattr(form, "form_errors", None) else 200
    return render_template("certificates/mapping_form.html", form=form, kind=kind, mapping=None,
                           prefill_note=note), status


@bp.route("/mappings/<int:mapping_id>/edit", methods=["GET", "POST"])
@roles(*WRITERS)
def mapping_edit(mapping_id: int):
    mapping = or_404(mappings.get_mapping, mapping_id)
    if request.method == "GET":
        form = MappingForm(data={"trusted_issuer": mapping.trusted_issuer, "cert_thumbprint": mapping.cert_thumbprint,
                                 "allowed_usernames": "\n".join(mapping.allowed_usernames),
                                 "allowed_system_user": mapping.allowed_system_user})
    else:
        form = MappingForm()
    if form.validate_on_submit():
        try:
            mappings.update_mapping(mapping_id, _input(form), current_actor())
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            flash("Mapping saved.", "success")
            return redirect(url_for("certificates.mapping_list", _anchor=f"mapping-{mapping_id}"))
    status = 400 if form.errors or getattr(form, "form_errors", None) else 200
    return render_template("certificates/mapping_form.html", form=form, kind=mapping.kind,
                           mapping=mapping), status


def _act(mapping_id: int, action, done: str):
    if ConfirmForm().validate_on_submit():
        try:
            result = action()
        except NotFound as exc:
            abort(404, exc.message)
        if result is not False:
            flash(done, "success")
    return redirect(url_for("certificates.mapping_list", _anchor=f"mapping-{mapping_id}"))


@bp.post("/mappings/<int:mapping_id>/delete")
@roles(*WRITERS)
def mapping_delete(mapping_id: int):
    return _act(mapping_id, lambda: mappings.delete_mapping(mapping_id, current_actor()), "Mapping deleted.")


@bp.post("/mappings/<int:mapping_id>/move-up")
@roles(*WRITERS)
def mapping_up(mapping_id: int):
    return _act(mapping_id, lambda: mappings.move_mapping(mapping_id, -1, current_actor()), "Mapping moved up.")


@bp.post("/mappings/<int:mapping_id>/move-down")
@roles(*WRITERS)
def mapping_down(mapping_id: int):
    return _act(mapping_id, lambda: mappings.move_mapping(mapping_id, 1, current_actor()), "Mapping moved down.")


@bp.get("/explain")
@roles(*READERS)
def explain():
    form = ExplainForm(request.args)
    stored = certificates.list_certificates()
    form.certificate.choices = [SelectChoice(0, "—")] + [
        SelectChoice(c.id, f"{c.label} ({certificates.ROLE_LABELS[c.role]})") for c in stored]
    result, status = None, 200
    if request.args and form.validate():
        try:
            result = mappings.explain(form.certificate.data or None, form.pem.data or "", form.user.data,
                                      form.tenant.data)
        except ValidationError as exc:
            apply_errors(form, exc)
            status = 400
        except NotFound as exc:
            form.certificate.errors = [*form.certificate.errors, exc.message]
            status = 400
    return render_template("certificates/explain.html", form=form, result=result,
                           line_label=mappings.HANDLER_LINES[mappings.handler_line()]), status


@bp.get("/config")
@roles(*READERS)
def config():
    form = ConfigForm(request.args)
    line = mappings.handler_line()
    toml = mappings.deployment_toml(log_client_cert_info=bool(form.log_client_cert_info.data), line=line)
    return render_template("certificates/config.html", form=form, toml=toml, report=mapping_lint.lint(),
                           log_note=mappings.LOG_INFO_NOTES[line])


@bp.get("/config/download")
@roles(*READERS)
def config_download():
    form = ConfigForm(request.args)
    toml = mappings.deployment_toml(log_client_cert_info=bool(form.log_client_cert_info.data))
    return Response(toml, mimetype="text/plain",
                    headers={"Content-Disposition": f'attachment; filename="{TOML_FILENAME}"'})
