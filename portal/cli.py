"""Flask commands: create-admin, bootstrap-admin, reset-password, rotate-key, create-api-client,
rotate-api-client-key, seed-demo, worker, reconcile, check-key-managers."""
from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from portal.extensions import db
from portal.models import ROLES
from portal.models.api_client import SCOPES as API_SCOPES, TENANT_SCOPES as API_TENANT_SCOPES
from portal.services.admin import admins
from portal.services.context import Actor
from portal.services.errors import Conflict, NotFound, ValidationError

# Shown in --help; the same wording as the API clients page.
API_SCOPE_LABELS = {
    "read": "read tenants and their public keys", "register": "register tenants",
    "update": "update, activate, deactivate tenants", "secrets": "generate a tenant's client secret",
    "keys": "rotate and retire signing keys", "validate": "validate tokens", "decommission": "decommission tenants",
}


def _read_password(prompt: str) -> str:
    """From a hidden prompt on a terminal, else the first line of stdin (for scripts and CI)."""
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline()
    if not line:
        raise click.ClickException("No password on standard input.")
    return line.rstrip("\r\n")


def _fail(exc: Exception) -> click.ClickException:
    if isinstance(exc, ValidationError):
        return click.ClickException("; ".join(f"{k}: {v}" if k else v for k, v in exc.errors.items()))
    return click.ClickException(getattr(exc, "message", str(exc)))


@click.command("create-admin")
@with_appcontext
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True)
def create_admin_command(username: str, role: str) -> None:
    """Create an administrator; the password is read from a prompt or standard input."""
    password = _read_password("Password")
    try:
        result = admins.create_admin(username, role, Actor.cli(), password=password)
    except (ValidationError, Conflict) as exc:
        raise _fail(exc) from exc
    click.echo(f"Created {result.admin.role} {result.admin.username!r}.")


@click.command("bootstrap-admin")
@with_appcontext
@click.option("--username", default="admin", show_default=True)
def bootstrap_admin_command(username: str) -> None:
    """Create the first administrator if there is none, and print its one-time password."""
    result = admins.bootstrap_first_admin(username)
    if result is None:
        click.echo("Administrators exist already; nothing to do.")
        return
    click.echo("=" * 64)
    click.echo(f"First administrator: {result.admin.username}")
    click.echo(f"One-time password:   {result.password}")
    click.echo("You will be asked to choose a new password at first sign-in.")
    click.echo("=" * 64)


@click.command("reset-password")
@with_appcontext
@click.option("--username", required=True)
def reset_password_command(username: str) -> None:
    """Set an administrator's password (recovery); their sessions end."""
    password = _read_password("New password")
    try:
        admins.set_password_cli(username, password)
    except (ValidationError, NotFound) as exc:
        raise _fail(exc) from exc
    click.echo(f"Password of {username!r} changed; their sessions have ended.")


@click.command("rotate-key")
@with_appcontext
def rotate_key_command() -> None:
    """Re-encrypt every stored secret with a new encryption key."""
    from portal.encryption import rotate_key
    from portal.models import Base

    key_file = current_app.config.get("ENCRYPTION_KEY_FILE")
    result = rotate_key(db.session, Base.metadata, Path(key_file) if key_file else None)
    click.echo(f"Re-encrypted {result.values} secret value(s).")
    if result.key_file:
        click.echo(f"New key written to {result.key_file}; back it up.")
    elif result.generated:
        click.echo("The key came from the environment. Set PORTAL_ENCRYPTION_KEY to this new value on every")
        click.echo("instance now (the old key no longer decrypts anything):")
        click.echo(result.new_key)
    else:
        click.echo("Everything is now encrypted with the first key of PORTAL_ENCRYPTION_KEY; remove the others.")


def _expiry_option(value: datetime | None) -> datetime | None:
    """A date means the start of that day in UTC; a time without a zone is read as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


EXPIRY_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


@click.command("create-api-client")
@with_appcontext
@click.option("--name", required=True, help="Who uses the key, e.g. the CI pipeline that registers tenants.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(API_SCOPES, case_sensitive=False),
              help="Repeat for each scope the client needs (default: read only). " + "; ".join(
                  f"{name}: {text}" for name, text in API_SCOPE_LABELS.items()) + ".")
@click.option("--tenants", "tenant_scope", type=click.Choice(API_TENANT_SCOPES), default="all", show_default=True,
              help="all; own: only tenants this client registers; pattern: only tenant ids matching --pattern.")
@click.option("--pattern", "tenant_pattern", default=None,
              help="With --tenants pattern: a tenant-id glob such as 'ci-*' ('*' any run, '?' one character).")
@click.option("--expires", type=click.DateTime(EXPIRY_FORMATS), default=None,
              help="When the key stops working, in UTC: YYYY-MM-DD (start of that day) or YYYY-MM-DDTHH:MM.")
def create_api_client_command(name: str, scopes: tuple[str, ...], tenant_scope: str, tenant_pattern: str | None,
                              expires: datetime | None) -> None:
    """Create a /v1 API client and print its app id and key (shown once, stored hashed). Read only unless
    --scope says otherwise."""
    from portal.services.admin import api_clients

    try:
        client, key = api_clients.create_client(name, Actor.cli(), scopes=scopes or None, tenant_scope=tenant_scope,
                                                tenant_pattern=tenant_pattern, expires_at=_expiry_option(expires))
    except ValidationError as exc:
        raise _fail(exc) from exc
    click.echo(f"X-API-AppId: {client.app_id}")
    click.echo(f"X-API-Key:   {key}")
    click.echo(f"Scopes: {', '.join(client.scope_list)}; tenants: {api_clients.describe_limit(client)}; "
               f"expires: {client.expires_at.isoformat() if client.expires_at else 'never'}.", err=True)
    click.echo("The key is shown once; store it now.", err=True)


@click.command("rotate-api-client-key")
@with_appcontext
@click.option("--name", default=None, help="The client's name (must name exactly one active client).")
@click.option("--app-id", default=None, help="The client's app id (app_...), instead of --name.")
@click.option("--overlap-hours", type=click.IntRange(0, 720), default=24, show_default=True,
              help="How long the old key keeps working beside the new one (never past its own expiry).")
@click.option("--expires", type=click.DateTime(EXPIRY_FORMATS), default=None,
              help="When the new key stops working, in UTC (default: never).")
def rotate_api_client_key_command(name: str | None, app_id: str | None, overlap_hours: int,
                                  expires: datetime | None) -> None:
    """Give an API client a new key (printed once); the old key keeps working for the overlap, then 401."""
    from portal.services.admin import api_clients

    if bool(name) == bool(app_id):
        raise click.UsageError("Give --name or --app-id.")
    if name:
        found = [c for c in api_clients.list_clients() if c.name == name and c.active]
        if len(found) != 1:
            raise click.ClickException(f"{len(found)} active API clients are named {name!r}; use --app-id."
                                       if found else f"No active API client is named {name!r}.")
        app_id = found[0].app_id
    try:
        client, key = api_clients.rotate_key(app_id, Actor.cli(), overlap_hours=overlap_hours,
                                             expires_at=_expiry_option(expires))
    except (ValidationError, NotFound) as exc:
        raise _fail(exc) from exc
    click.echo(f"X-API-AppId: {client.app_id}")
    click.echo(f"X-API-Key:   {key}")
    until = client.previous_key_expires_at
    click.echo(f"The old key works until {until.isoformat()}." if until else "The old key no longer works.", err=True)
    click.echo("The new key is shown once; store it now.", err=True)


@click.command("seed-demo")
@with_appcontext
@click.option("--tenants", "count", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
def seed_demo_command(count: int) -> None:
    """Fill the database with COUNT demo tenants (for trying the list at scale and for benchmarks)."""
    from portal.services.tenants import demo

    added = demo.seed_demo(count)
    click.echo(f"Added {added} demo tenant(s).")


@click.command("worker")
@with_appcontext
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Threads delivering jobs side by side (WSO2 calls wait on the network). Default: the "
                   "WORKER_CONCURRENCY setting (4), which also sizes the database pool.")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (scripts and tests).")
@click.option("--poll-interval", type=click.FloatRange(0.05, 60), default=1.0, show_default=True,
              help="Seconds an idle thread waits before looking for jobs again.")
def worker_command(concurrency: int | None, once: bool, poll_interval: float) -> None:
    """Deliver tenant changes from the outbox to IS 7 and API Manager, and run bulk onboarding jobs."""
    import signal
    import threading

    from portal.services.outbox.worker import Worker

    app = current_app._get_current_object()
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    concurrency = concurrency or int(app.config["WORKER_CONCURRENCY"])
    try:
        runner = Worker(app, concurrency=concurrency, poll_interval=poll_interval)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not once:
        click.echo(f"Outbox worker {runner.name}: {concurrency} thread(s); stop with Ctrl-C.")
    stats = runner.run(once=once, stop=stop)
    click.echo(f"Delivered {stats.done}, retrying {stats.retry}, failed {stats.failed}, lost lease {stats.lost}"
               + (f", worker errors {stats.crashed}" if stats.crashed else "")
               + (f", bulk jobs run {stats.bulk}" if stats.bulk else "") + ".")


@click.command("reconcile")
@with_appcontext
@click.option("--fix", is_flag=True, help="Push every registered tenant that is missing or differs in a product.")
@click.option("--all", "show_all", is_flag=True, help="List tenants that agree too.")
def reconcile_command(fix: bool, show_all: bool) -> None:
    """Compare the registry, IS 7 and API Manager; list what is missing or differs, and optionally fix it."""
    from portal.services.outbox import reconcile

    report = reconcile.compare(include_in_sync=show_all)
    for line in reconcile.lines(report):
        click.echo(line)
    if fix:
        done = reconcile.fix_all(Actor.cli(), report)
        for line in done:
            click.echo(line)
        click.echo(f"Queued {len(done)} fix(es); the worker delivers them. Unregistered tenants are imported "
                   "from the reconcile page (they need identity provider settings).")
    if report.unreadable:
        raise SystemExit(2)


@click.command("check-key-managers")
@with_appcontext
@click.option("--repair", is_flag=True, help="Create each missing WSO2-IS-7 key manager where that is safe.")
def check_key_managers_command(repair: bool) -> None:
    """Check every synced tenant's WSO2-IS-7 key manager in API Manager; exit 1 if any needs a look."""
    from portal.services.sharing import key_managers

    summary = key_managers.check_all(repair_missing=repair, actor=Actor.cli())
    for line in summary.lines():
        click.echo(line)
    if summary.problem_count:
        raise SystemExit(1)


def register_commands(app: Flask) -> None:
    for command in (create_admin_command, bootstrap_admin_command, reset_password_command, rotate_key_command,
                    create_api_client_command, rotate_api_client_key_command, seed_demo_command, worker_command,
                    reconcile_command, check_key_managers_command):
        app.cli.add_command(command)
