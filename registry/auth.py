"""Authentication and authorisation of API requests.

Every /api route names the least role it needs through `Auth.viewer`, `Auth.operator` or
`Auth.admin`. A key is sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Each key
is rate limited (its own limit, or the registry's default). Things of a site the key does not
see are answered 404 by the routes, exactly as for things that do not exist.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.access import ALL_SITES, role_allows, site_visible
from registry import api_keys, metrics
from registry.api_keys import StoredKey
from registry.rate_limit import TokenBuckets
from registry.settings import RegistrySettings

_bearer = HTTPBearer(auto_error=False, description="an API key: cck_<id>_<secret>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


@dataclass(frozen=True)
class Principal:
    """The key a request was made with."""

    key_id: str
    role: str
    site: str

    @property
    def all_sites(self) -> bool:
        return self.site == ALL_SITES

    @property
    def site_filter(self) -> str | None:
        """The one site this key is confined to; None for a key of every site."""
        return None if self.all_sites else self.site

    def sees(self, site: str | None) -> bool:
        return site_visible(self.site, site)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message,
                         headers={"WWW-Authenticate": "Bearer"})


class Auth:
    """Resolves the request's key (cached for `cache_s`, so a revocation takes effect within
    that time) and applies its rate limit."""

    def __init__(self, settings: RegistrySettings, engine: AsyncEngine,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings, self._engine, self._clock = settings, engine, clock
        self._cache: dict[str, tuple[StoredKey | None, float]] = {}
        self._buckets = TokenBuckets()
        self.viewer = self._needs("viewer")
        self.operator = self._needs("operator")
        self.admin = self._needs("admin")

    async def _stored(self, key_id: str) -> StoredKey | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[1] < self._settings.api_key_cache_s:
            return cached[0]
        found = await api_keys.find(self._engine, key_id)
        if len(self._cache) >= 10_000:  # bounded: unknown ids are cached too
            self._cache.clear()
        self._cache[key_id] = (found, now)
        return found

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            metrics.AUTH_FAILURES.labels("missing").inc()
            raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
        parsed = api_keys.parse(token)
        stored = None if parsed is None else await self._stored(parsed[0])
        if parsed is None or stored is None or not api_keys.secret_matches(stored, parsed[1]):
            metrics.AUTH_FAILURES.labels("invalid").inc()
            raise _unauthorized("the API key is not valid")
        if stored.revoked_at is not None:
            metrics.AUTH_FAILURES.labels("revoked").inc()
            raise _unauthorized("the API key was revoked")
        rate = stored.rate_per_s or self._settings.rate_limit_per_s
        burst = stored.burst or self._settings.rate_limit_burst
        wait_s = self._buckets.take(stored.id, rate, burst, self._clock())
        if wait_s > 0:
            metrics.RATE_LIMITED.inc()
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"rate limit of {rate:g} requests/s exceeded",
                                headers={"Retry-After": str(max(1, round(wait_s + 0.5)))})
        return Principal(stored.id, stored.role, stored.site)

    def _needs(self, role: str) -> Callable[..., Awaitable[Principal]]:
        async def dependency(
            bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
            header: Annotated[str | None, Depends(_header)],
        ) -> Principal:
            principal = await self.authenticate(bearer.credentials if bearer else header)
            if not role_allows(principal.role, role):
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    f"this needs the {role} role; the key is {principal.role}")
            return principal

        return dependency
