"""Who is acting and from where: passed into services so they never read Flask's request themselves."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    name: str
    id: int | None = None
    role: str | None = None
    request_id: str | None = None
    ip: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        return cls(name="cli")

    @classmethod
    def system(cls) -> Actor:
        return cls(name="system")
