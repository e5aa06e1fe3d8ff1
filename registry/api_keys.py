"""API keys: minting, parsing and storage. A key reads `cck_<id>_<secret>`; only the id and
the SHA-256 of the secret are stored (the secret is 256 random bits, so a plain digest is as
strong as a slow hash and costs nothing per request)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.tables import api_keys

PREFIX = "cck"
_KEY_RE = re.compile(rf"^{PREFIX}_(?P<id>[0-9a-f]{{12}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class StoredKey:
    id: str
    name: str
    role: str
    site: str
    rate_per_s: float | None
    burst: int | None
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None
    secret_sha256: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint() -> tuple[str, str, str]:
    """A new key: (key id, the whole key to hand out once, the digest to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}_{key_id}_{secret}", _digest(secret)


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    found = _KEY_RE.fullmatch(token)
    return (found["id"], found["secret"]) if found else None


def secret_matches(stored: StoredKey, secret: str) -> bool:
    return hmac.compare_digest(stored.secret_sha256, _digest(secret))


def _stored(row: object) -> StoredKey:
    m = row._mapping  # type: ignore[attr-defined]
    return StoredKey(**{name: m[name] for name in StoredKey.__dataclass_fields__})


async def create(engine: AsyncEngine, *, name: str, role: str, site: str,
                 rate_per_s: float | None = None, burst: int | None = None,
                 created_by: str | None = None) -> tuple[StoredKey, str]:
    """Store a new key; returns it with the whole key, which is shown this once only."""
    key_id, token, digest = mint()
    async with engine.begin() as conn:
        row = (await conn.execute(
            api_keys.insert().values(id=key_id, name=name, role=role, site=site,
                                     rate_per_s=rate_per_s, burst=burst,
                                     created_by=created_by, secret_sha256=digest)
            .returning(*api_keys.c)
        )).one()
    return _stored(row), token


async def find(engine: AsyncEngine, key_id: str) -> StoredKey | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    return None if row is None else _stored(row)


async def list_keys(engine: AsyncEngine, site: str | None, limit: int, offset: int,
                    ) -> list[StoredKey]:
    """Every key, or those of one site (None: all sites)."""
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if site is not None:
        query = query.where(api_keys.c.site == site)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.limit(limit).offset(offset))).all()
    return [_stored(r) for r in rows]


async def revoke(engine: AsyncEngine, key_id: str, site: str | None) -> StoredKey | None:
    """Revoke a key (of `site`, unless None); None when there is no such key there."""
    query = (api_keys.update().where(api_keys.c.id == key_id)
             .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
             .returning(*api_keys.c))
    if site is not None:
        query = query.where(api_keys.c.site == site)
    async with engine.begin() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else _stored(row)
