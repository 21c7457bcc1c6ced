"""Configuration: safe defaults here; instance/config.py and PORTAL_* environment variables override them.

Secrets never have a usable default. On first start the portal generates a secret key and an encryption key
in the instance folder (mode 0600) so a fresh install is safe without any set-up.
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet


class DefaultConfig:
    """Defaults for every install. Nothing here is a secret."""

    SECRET_KEY: str | None = None  # generated into instance/secret_key when not configured
    ENCRYPTION_KEY: str | None = None  # comma-separated Fernet keys, newest first; else instance/encryption.key

    SQLALCHEMY_DATABASE_URI: str | None = None  # DATABASE_URL, else SQLite in instance/
    # No pool_pre_ping (a round trip on every checkout): portal/db_liveness.py polls the socket instead, and
    # pool_recycle retires connections before idle timeouts nobody announces.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": False, "pool_recycle": 1800}
    # Threads of `flask worker` (its --concurrency default). The connection pool is sized from it (pool_size
    # WORKER_CONCURRENCY + 3, at least 5, unless SQLALCHEMY_ENGINE_OPTIONS names one): threads beyond the pool's
    # connections would queue for one. Web processes open only the connections their threads use.
    WORKER_CONCURRENCY = 4

    # Sessions: 30 minutes idle, 12 hours absolute, server-side revocation (see services/sessions.py).
    SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
    SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=12)
    SESSION_TOUCH_INTERVAL = timedelta(seconds=60)  # how often last-seen is written, to spare the database
    PERMANENT_SESSION_LIFETIME = timedelta(minutes=30)
    SESSION_REFRESH_EACH_REQUEST = True
    SESSION_COOKIE_NAME = "portal_session"  # "__Host-" is prefixed whenever the request is HTTPS
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False  # forced on for HTTPS requests
    # A session is bound to the browser that opened it: another User-Agent ends it. With a prefix length, also to
    # the network it came from (IPv4 /n, IPv6 /64 when n > 0; 0 = addresses may change, as on mobile networks).
    SESSION_BIND_USER_AGENT = True
    SESSION_BIND_IPV4_PREFIX = 0
    REMEMBER_COOKIE_DURATION = timedelta(0)  # no remember-me
    DEVICE_COOKIE_NAME = "portal_device"
    DEVICE_COOKIE_MAX_AGE = int(timedelta(days=180).total_seconds())

    # Request size: certificates and forms are small; bulk uploads set their own cap.
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024

    WTF_CSRF_TIME_LIMIT = 3600

    # Sign-in throttling (Flask-Limiter). Counters are per process with memory://; use Redis for several instances.
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_STRATEGY = "moving-window"
    RATELIMIT_HEADERS_ENABLED = True
    LOGIN_LIMIT_PER_IP = "30 per minute;300 per hour"
    LOGIN_FAILURE_LIMIT_PER_IP_USER = "5 per minute;30 per hour"
    LOGIN_FAILURE_LIMIT_PER_USER = "20 per hour"  # waived for browsers holding a device cookie for that user
    # Failed sign-ins across all addresses; once spent, sign-ins are refused with 429 before any hashing, except from
    # browsers holding a device cookie for the username (web/auth/throttle.py). Per process with memory://.
    LOGIN_FAILURE_LIMIT_GLOBAL = "5 per 5 seconds;30 per minute"
    # Wrong current passwords on the change-password form, per administrator and per session.
    PASSWORD_CHANGE_FAILURE_LIMIT_PER_ADMIN = "10 per hour"
    PASSWORD_CHANGE_FAILURE_LIMIT_PER_SESSION = "5 per 15 minutes"

    # Password hashing: argon2id, argon2-cffi's RFC 9106 low-memory profile (t=3, m=64 MiB, p=4).
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 65536
    ARGON2_PARALLELISM = 4
    PASSWORD_MIN_LENGTH = 12
    # Each argon2id hash takes ARGON2_MEMORY_COST KiB: at most this many run at once on the host (all workers; lock
    # files in PASSWORD_HASH_LOCK_DIR, default the instance folder), and a request waits at most PASSWORD_HASH_WAIT
    # seconds for a free slot before a 503 with Retry-After.
    PASSWORD_HASH_CONCURRENCY = 1
    PASSWORD_HASH_WAIT = 1.0
    PASSWORD_HASH_LOCK_DIR: str | None = None

    # Behind nginx: number of trusted proxy hops per header (0 = ProxyFix off).
    PROXY_FIX_X_FOR = 0
    PROXY_FIX_X_PROTO = 0
    PROXY_FIX_X_HOST = 0
    PROXY_FIX_X_PREFIX = 0

    # Tenants. The domain is derived as "<tenantid>.<suffix>" when a registration names none.
    TENANT_DOMAIN_SUFFIX = "tenants.local"
    TENANT_DOTLESS_DOMAINS = False  # IS 7's public_cloud_setup=false accepts domains without a dot
    TENANT_PAGE_SIZE = 50

    # Identity-provider connection checks. OIDC fetches go through the SSRF guard: https only and public
    # addresses only, unless a lab allows http or lists private networks (CIDRs) here.
    IDP_CHECK_TIMEOUT = 5.0
    IDP_PROVISION_USER_STORE = True  # create um_user/um_role/um_user_role in the tenant schema when absent
    OIDC_ALLOW_HTTP = False
    OIDC_ALLOWED_NETWORKS: tuple[str, ...] = ()
    OIDC_CA_BUNDLE: str | None = None  # PEM bundle to trust instead of the system CAs
    OIDC_MAX_BYTES = 65536
    LDAP_CA_FILE: str | None = None
    # Outbound connection policy (portal/clients/address_policy.py) for JDBC, LDAP, IS 7 and API Manager, applied to
    # every resolved address on every connect. Link-local, cloud metadata, unspecified, multicast and broadcast
    # addresses are always refused; loopback, private and public ones follow the switches. Networks are CIDRs (a list,
    # or one comma-separated string in PORTAL_*): the most specific allow/deny entry wins over the switches (deny on a
    # tie); a metadata address is only allowed when an allow entry names exactly that address. OIDC fetches stay
    # public-only (OIDC_ALLOWED_NETWORKS) and also obey OUTBOUND_DENY_NETWORKS.
    OUTBOUND_ALLOW_LOOPBACK = True
    OUTBOUND_ALLOW_PRIVATE = True  # RFC 1918, CGNAT 100.64/10, unique-local fc00::/7 and other non-global ranges
    OUTBOUND_ALLOW_PUBLIC = True
    OUTBOUND_ALLOW_NETWORKS: tuple[str, ...] = ()
    OUTBOUND_DENY_NETWORKS: tuple[str, ...] = ()
    # Connection checks (Test connection, registration checks, re-checks, product connection tests) per actor
    # (administrator or API client), counted on Flask-Limiter's storage; beyond it a 429 says when to retry.
    CONNECTION_CHECK_LIMIT_PER_ACTOR = "20 per minute"

    # WSO2 Identity Server 7: where the portal calls it (pre-fills the mutual-TLS check).
    IS7_BASE_URL: str | None = None

    # Bulk onboarding: rows per file and the upload cap for that one form.
    BULK_MAX_ROWS = 10000
    BULK_MAX_BYTES = 16 * 1024 * 1024
    BULK_RUN_INLINE = False  # tests: run jobs in the request instead of on the worker

    # Tokens (POST /oauth/token, POST /v1/token/validate). The issuer of a tenant's tokens is
    # "<PUBLIC_BASE_URL>/t/<tenantId>"; without PUBLIC_BASE_URL it is built from the request (behind nginx, set
    # PROXY_FIX_* so that is the public https address). Set it in production: the issuer must not change.
    PUBLIC_BASE_URL: str | None = None
    # Host names the portal answers to (Flask's TRUSTED_HOSTS; ".example.com" also matches subdomains). Outside
    # debug and testing, with neither this nor PUBLIC_BASE_URL set, only loopback names are answered
    # (LOOPBACK_HOSTS), so no absolute URL is ever built from an arbitrary Host header.
    TRUSTED_HOSTS: list[str] | None = None
    TOKEN_LIFETIME = 3600  # seconds
    TOKEN_AUDIENCE = "tenant-services"  # aud of issued tokens, and what validation expects unless told otherwise
    TOKEN_LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat; at most 60
    KEY_GRACE_PERIOD = 86400  # seconds a rotated-out key keeps validating (passive); at least TOKEN_LIFETIME
    KEPT_SECRET_SECONDS = 900  # secrets typed into a failed or tested tenant form, kept (encrypted) for that form
    TOKEN_FAILURE_LIMIT_PER_IP = "60 per minute"  # failed client authentications / grants per address
    USER_STORE_TIMEOUT = 5.0  # the password grant's call to a tenant's database or directory
    # EXTERNAL tenants: their issuer's JWKS, cached in the database for every worker.
    JWKS_LIFESPAN = 300  # seconds before a scheduled refresh
    JWKS_REFRESH_COOLDOWN = 30  # at most one fetch per tenant in this many seconds (unknown kid, errors)

    HSTS_SECONDS = 31536000
    LOG_LEVEL = "INFO"


# SECRET_KEY values that mean "nobody set this".
WEAK_SECRET_KEYS = frozenset({"", "dev", "development", "secret", "changeme", "change-me", "please-change-me", "test"})


class ConfigError(RuntimeError):
    """The configuration is unsafe or unusable; the app refuses to start."""


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _read_or_create(path: Path, make: callable) -> str:
    """Read a generated secret, or create it with mode 0600 without a window where others could read it."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def apply_instance_secrets(config: dict, instance_path: str) -> None:
    """Fill SECRET_KEY and ENCRYPTION_KEY from instance/ (generating them on first run) when not configured."""
    folder = Path(instance_path)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _read_or_create(folder / "secret_key", lambda: secrets.token_urlsafe(48))
    if not config.get("ENCRYPTION_KEY"):
        key_file = folder / "encryption.key"
        keys = _read_or_create(key_file, lambda: Fernet.generate_key().decode())
        config["ENCRYPTION_KEY"] = ",".join(keys.split())
        config["ENCRYPTION_KEY_FILE"] = str(key_file)


# What an unconfigured production instance answers to: `make run`, a benchmark, a health check on the host itself.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")


def apply_trusted_hosts(config: dict, *, production: bool) -> None:
    """Issuers, discovery documents and JWKS URLs are absolute: without PUBLIC_BASE_URL they come from the request's
    Host. Outside debug and testing such a portal answers only to TRUSTED_HOSTS, by default loopback names, so a
    forged Host is refused (400) instead of reflected."""
    hosts = config.get("TRUSTED_HOSTS")
    if isinstance(hosts, str):  # PORTAL_TRUSTED_HOSTS=portal.example.com,admin.example.com
        config["TRUSTED_HOSTS"] = [h.strip() for h in hosts.split(",") if h.strip()] or None
    if production and not config.get("PUBLIC_BASE_URL") and not config.get("TRUSTED_HOSTS"):
        config["TRUSTED_HOSTS"] = list(LOOPBACK_HOSTS)


def check_config(config: dict, *, production: bool) -> None:
    """Fail fast on settings that would make a production instance unsafe."""
    if production:
        key = str(config.get("SECRET_KEY") or "")
        if key.lower() in WEAK_SECRET_KEYS or len(key) < 32:
            raise ConfigError(
                "SECRET_KEY is a default or shorter than 32 characters; unset it to have one generated "
                "in instance/, or set PORTAL_SECRET_KEY to a long random value."
            )
    if not config.get("ENCRYPTION_KEY"):
        raise ConfigError("ENCRYPTION_KEY is missing.")
    if not 0 <= int(config.get("TOKEN_LEEWAY", 0)) <= 60:
        raise ConfigError("TOKEN_LEEWAY must be between 0 and 60 seconds (RFC 7519: a small allowance for skew).")
    if int(config.get("KEY_GRACE_PERIOD", 0)) < int(config.get("TOKEN_LIFETIME", 0)):
        raise ConfigError("KEY_GRACE_PERIOD must be at least TOKEN_LIFETIME, or rotating a key would invalidate "
                          "tokens that have not expired yet.")
    base = config.get("PUBLIC_BASE_URL")
    if base and not str(base).startswith(("https://", "http://")):
        raise ConfigError("PUBLIC_BASE_URL must be an absolute http(s) URL, such as https://portal.example.com.")
