"""Administrators of the portal and their server-side sign-in sessions."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, UTCDateTime, utcnow

ROLES = ("admin", "operator", "auditor")


class AdminUser(UserMixin, Base):
    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)  # stored lower-case
    role: Mapped[str] = mapped_column(sa.String(16))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    must_change_password: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    sessions: Mapped[list[AdminSession]] = relationship(back_populates="admin", cascade="all, delete-orphan")

    __table_args__ = (sa.CheckConstraint("role IN ('admin', 'operator', 'auditor')", name="role"),)

    # The server-side session this object was loaded through; Flask-Login stores its token, not the user id.
    # Plain attributes, not columns. The session row itself is read only when asked for (sign-out, own password):
    # services/admin/sessions.load checks the session with one query and keeps its id.
    current_session_id = None  # int | None
    _current_session = None  # AdminSession | None
    session_token = None  # str | None

    @property
    def current_session(self) -> AdminSession | None:
        if self._current_session is None and self.current_session_id is not None:
            session = sa.orm.object_session(self)
            if session is None:  # loaded per request outside any ORM session (services/admin/sessions.py)
                raise RuntimeError("the signed-in admin is not attached: call services.admin.sessions.attached")
            self._current_session = session.get(AdminSession, self.current_session_id)
        return self._current_session

    @current_session.setter
    def current_session(self, row: AdminSession | None) -> None:
        self._current_session, self.current_session_id = row, (row.id if row is not None else None)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def get_id(self) -> str | None:  # Flask-Login
        return self.session_token


class AdminSession(Base):
    """One signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "admin_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    admin_id: Mapped[int] = mapped_column(sa.ForeignKey("admin_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(32))

    admin: Mapped[AdminUser] = relationship(back_populates="sessions")
