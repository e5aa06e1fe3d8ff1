"""Routes for API keys (admin only). An admin of one site manages the keys of that site; an
admin of every site manages all. The whole key is returned once, at creation.

No `from __future__ import annotations`: FastAPI reads the route annotations at definition
time, and the page-size bound closes over settings.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.access import ALL_SITES, Role
from contracts.ids import check_slug
from registry import api_keys
from registry.api_keys import StoredKey
from registry.auth import Auth, Principal
from registry.errors import AUTHENTICATED, error_responses
from registry.settings import RegistrySettings


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Role
    site: Annotated[str | None, Field(description="a site, or '*' for every site (only an "
                                      "admin of every site may); default: the caller's")] = None
    rate_per_s: Annotated[float | None, Field(gt=0, le=10_000)] = None
    burst: Annotated[int | None, Field(ge=1, le=100_000)] = None


class KeyOut(BaseModel):
    id: str
    name: str
    role: str
    site: str
    rate_per_s: float | None
    burst: int | None
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the whole key: shown this once, store it now")


class MeOut(BaseModel):
    key_id: str
    role: str
    site: str


def _out(stored: StoredKey) -> KeyOut:
    return KeyOut(**{name: getattr(stored, name) for name in KeyOut.model_fields})


def _site_of_new_key(caller: Principal, asked: str | None) -> str:
    site = asked or caller.site
    if site != ALL_SITES:
        try:
            check_slug(site, "site")
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                [{"loc": ["body", "site"], "msg": str(exc),
                                  "type": "value_error"}]) from None
    if not caller.all_sites and site != caller.site:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"a key of site {caller.site!r} creates keys of that site only")
    return site


def keys_router(settings: RegistrySettings, engine: AsyncEngine, auth: Auth) -> APIRouter:
    router = APIRouter(tags=["keys"], responses=AUTHENTICATED)
    Admin = Annotated[Principal, Depends(auth.admin)]
    Viewer = Annotated[Principal, Depends(auth.viewer)]

    @router.get("/api/me")
    async def who_am_i(caller: Viewer) -> MeOut:
        """The key this request was made with: its role and site."""
        return MeOut(key_id=caller.key_id, role=caller.role, site=caller.site)

    @router.post("/api/keys", status_code=status.HTTP_201_CREATED)
    async def create_key(body: KeyIn, caller: Admin) -> NewKeyOut:
        site = _site_of_new_key(caller, body.site)
        stored, token = await api_keys.create(
            engine, name=body.name, role=body.role, site=site, rate_per_s=body.rate_per_s,
            burst=body.burst, created_by=caller.key_id)
        return NewKeyOut(**_out(stored).model_dump(), key=token)

    @router.get("/api/keys")
    async def list_keys(
        caller: Admin,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> list[KeyOut]:
        return [_out(k) for k in
                await api_keys.list_keys(engine, caller.site_filter, limit, offset)]

    @router.delete("/api/keys/{key_id}", responses=error_responses(404))
    async def revoke_key(key_id: str, caller: Admin) -> KeyOut:
        """Revoke a key; it is refused from then on (within API_KEY_CACHE_S)."""
        revoked = await api_keys.revoke(engine, key_id, caller.site_filter)
        if revoked is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r}")
        return _out(revoked)

    return router
