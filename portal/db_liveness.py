"""Liveness of pooled database connections without a round trip per request.

`pool_pre_ping` sends a query (psycopg: an empty statement) on every checkout, so every request paid one more round
trip to the database before its own work. Instead, for a server database:

- on checkout, the connection's socket is polled without waiting. An idle connection has nothing to read; a readable
  one means the server wrote to it or closed it (a restarted server, pg_terminate_backend, an idle timeout: the server
  sends its FATAL message and closes), so the pool throws it away and hands out another (SQLAlchemy's documented
  pattern: the checkout event raises DisconnectionError). One poll(2) call, no network traffic;
- `pool_recycle` (config SQLALCHEMY_ENGINE_OPTIONS) retires connections after 30 minutes, for the drops nobody
  announces (a firewall forgetting an idle flow sends nothing);
- a connection that dies mid-request is still seen by SQLAlchemy's disconnect detection (is_disconnect), which
  invalidates it and the pool's older connections; that request fails, the next gets a fresh connection.

SQLite has no server and no socket: nothing to check.
"""
from __future__ import annotations

import select

import sqlalchemy as sa


def install(engine: sa.engine.Engine) -> None:
    """Check connections on checkout (server databases only)."""
    if engine.dialect.name != "sqlite" and not sa.event.contains(engine, "checkout", refuse_dead):
        sa.event.listen(engine, "checkout", refuse_dead)


def refuse_dead(dbapi_connection, _record, _proxy) -> None:
    """Pool checkout hook: raise DisconnectionError for a connection that is closed or has unread input."""
    if not is_quiet(dbapi_connection):
        raise sa.exc.DisconnectionError("the database closed or wrote to an idle pooled connection")


def is_quiet(dbapi_connection) -> bool:
    """An open connection with nothing waiting on its socket (psycopg and psycopg2 both give fileno())."""
    if getattr(dbapi_connection, "closed", False):
        return False
    try:
        fd = dbapi_connection.fileno()
    except Exception:  # noqa: BLE001 - the driver says the connection is unusable, in its own exception type
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)
