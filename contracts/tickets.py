"""WebSocket tickets: short-lived, HMAC-SHA256 signed proofs that an API key may connect to
the broadcaster. No I/O.

Browsers cannot set headers on a WebSocket, and an API key must not ride in a URL (URLs end up
in proxy logs and browser history). So the registry, which checks the key, issues a ticket
(`POST /api/ws-ticket`) that the page passes as `?ticket=...`; the broadcaster, which shares
only the secret with the registry, verifies it before the upgrade. A ticket lives
`DEFAULT_TTL_S` seconds and is checked once, on connect: an open connection outlives it.

Format (version 1): `v1.<payload>.<mac>`, where payload is the base64url (unpadded) compact JSON
`{"k": key id, "r": role, "s": site, "e": expiry (Unix seconds)}` and mac the base64url
HMAC-SHA256 of `v1.<payload>` under the shared secret. A new format gets a new version prefix,
so a broadcaster refuses what it does not understand instead of misreading it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.access import ALL_SITES, Role
from contracts.ids import check_slug

VERSION = "v1"
DEFAULT_TTL_S = 60.0
# Tickets are minted for seconds: one claiming to live longer was not made by this code.
MAX_TTL_S = 3600.0
# A ticket is a few hundred characters; anything much longer is refused before any parsing.
MAX_TICKET_CHARS = 1024
MIN_SECRET_CHARS = 32


class TicketError(ValueError):
    """A ticket that does not let its bearer in; the message says why, without echoing it."""


def check_secret(secret: str) -> str:
    """A shared secret long enough that guessing it is hopeless (e.g. `openssl rand -hex 32`)."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"the ticket secret must be at least {MIN_SECRET_CHARS} characters")
    return secret


class _Claims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    k: str = Field(min_length=1, max_length=100)
    r: Role
    s: str
    e: float
    n: str = Field(min_length=16, max_length=32, description="random: each ticket is let in once")

    @field_validator("s")
    @classmethod
    def _site(cls, value: str) -> str:
        return value if value == ALL_SITES else check_slug(value, "site")


@dataclass(frozen=True)
class Ticket:
    """Who may connect: the API key's id, role and site, and until when (Unix seconds)."""

    key_id: str
    role: str
    site: str
    expires_at: float
    nonce: str  # one connect per ticket: the broadcaster remembers those used until expiry


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) % 4 == 1:
        raise TicketError("the ticket is malformed")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TicketError("the ticket is malformed") from None


def _mac(secret: str, signed: str) -> bytes:
    return hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest()


def issue(secret: str, *, key_id: str, role: str, site: str, now: float,
          ttl_s: float = DEFAULT_TTL_S) -> tuple[str, Ticket]:
    """A signed ticket for this key, valid from `now` for `ttl_s` seconds."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"a ticket lives between 0 and {MAX_TTL_S:g} s, not {ttl_s:g}")
    # Validated like a ticket being read, so nothing is signed that verify() would refuse.
    claims = _Claims.model_validate({"k": key_id, "r": role, "s": site,
                                     "e": round(now + ttl_s, 3), "n": secrets.token_urlsafe(16)})
    payload = _b64(json.dumps(claims.model_dump(), separators=(",", ":")).encode())
    signed = f"{VERSION}.{payload}"
    token = f"{signed}.{_b64(_mac(secret, signed))}"
    return token, Ticket(claims.k, claims.r, claims.s, claims.e, claims.n)


def verify(secret: str, token: str, *, now: float) -> Ticket:
    """The ticket's claims if it was signed with `secret` and has not expired at `now`;
    otherwise TicketError. The MAC is compared in constant time, before any claim is read."""
    if len(token) > MAX_TICKET_CHARS or token.count(".") != 2:
        raise TicketError("the ticket is malformed")
    version, payload, mac = token.split(".")
    if version != VERSION:
        raise TicketError("the ticket's version is not supported")
    signed = f"{version}.{payload}"
    if not hmac.compare_digest(_mac(secret, signed), _unb64(mac)):
        raise TicketError("the ticket's signature is not valid")
    try:
        claims = _Claims.model_validate_json(_unb64(payload))
    except ValidationError:
        raise TicketError("the ticket is malformed") from None
    if claims.e <= now:
        raise TicketError("the ticket has expired")
    if claims.e > now + MAX_TTL_S:
        raise TicketError("the ticket is malformed")
    return Ticket(claims.k, claims.r, claims.s, claims.e, claims.n)
