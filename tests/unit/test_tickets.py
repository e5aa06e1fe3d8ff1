"""WebSocket tickets (contracts/tickets.py): what verifies, and everything that must not."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import tickets
from contracts.tickets import Ticket, TicketError, issue, verify

SECRET = "s" * 40
OTHER = "o" * 40
NOW = 1_800_000_000.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_fresh_ticket_verifies_with_its_claims() -> None:
    token, ticket = issue(SECRET, key_id="k1", role="viewer", site="shop-1", now=NOW)
    assert ticket == Ticket("k1", "viewer", "shop-1", NOW + tickets.DEFAULT_TTL_S,
                            ticket.nonce)
    assert verify(SECRET, token, now=NOW + 59.9) == ticket
    assert len(ticket.nonce) >= 16
    assert issue(SECRET, key_id="k1", role="viewer", site="shop-1", now=NOW)[1].nonce \
        != ticket.nonce
    assert token.startswith("v1.") and SECRET not in token


def test_a_ticket_of_every_site_keeps_its_star() -> None:
    token, _ = issue(SECRET, key_id="k1", role="admin", site="*", now=NOW, ttl_s=5)
    assert verify(SECRET, token, now=NOW).site == "*"


@pytest.mark.parametrize(("at", "reason"), [(NOW + 60, "expired"), (NOW + 600, "expired")])
def test_an_expired_ticket_is_refused(at: float, reason: str) -> None:
    token, _ = issue(SECRET, key_id="k1", role="viewer", site="shop-1", now=NOW)
    with pytest.raises(TicketError, match=reason):
        verify(SECRET, token, now=at)


def test_a_ticket_signed_with_another_secret_is_refused() -> None:
    token, _ = issue(OTHER, key_id="k1", role="viewer", site="shop-1", now=NOW)
    with pytest.raises(TicketError, match="signature"):
        verify(SECRET, token, now=NOW)


def test_changed_claims_break_the_signature() -> None:
    token, _ = issue(SECRET, key_id="k1", role="viewer", site="shop-1", now=NOW)
    version, _, mac = token.split(".")
    for claims in ({"k": "k1", "r": "admin", "s": "shop-1", "e": NOW + 60},
                   {"k": "k1", "r": "viewer", "s": "*", "e": NOW + 60},
                   {"k": "k1", "r": "viewer", "s": "shop-1", "e": NOW + 3000}):
        forged = f"{version}.{_b64(json.dumps(claims).encode())}.{mac}"
        with pytest.raises(TicketError, match="signature"):
            verify(SECRET, forged, now=NOW)


def test_a_well_signed_ticket_with_bad_claims_is_refused() -> None:
    """What the registry would never sign, even under the right secret."""
    for claims in ({"k": "k1", "r": "root", "s": "shop-1", "e": NOW + 60},
                   {"k": "k1", "r": "viewer", "s": "Shop 1", "e": NOW + 60},
                   {"k": "k1", "r": "viewer", "s": "shop-1", "e": NOW + 60, "x": 1},
                   {"k": "k1", "r": "viewer", "s": "shop-1", "e": NOW + 86_400}):
        signed = f"v1.{_b64(json.dumps(claims).encode())}"
        mac = _b64(tickets._mac(SECRET, signed))
        with pytest.raises(TicketError, match="malformed"):
            verify(SECRET, f"{signed}.{mac}", now=NOW)


@pytest.mark.parametrize("token", [
    "", "v1", "v1..", "v1.a.b", "v2.e30.AAAA", "x" * 5000, "v1.e30.AAAA.BBBB", "v1.!!!.@@@",
])
def test_malformed_tickets_are_refused(token: str) -> None:
    with pytest.raises(TicketError):
        verify(SECRET, token, now=NOW)


def test_another_version_is_refused_as_such() -> None:
    token, _ = issue(SECRET, key_id="k1", role="viewer", site="shop-1", now=NOW)
    with pytest.raises(TicketError, match="version"):
        verify(SECRET, "v2" + token[2:], now=NOW)


@given(st.text(max_size=300))
def test_any_string_is_refused_with_a_ticket_error(token: str) -> None:
    with pytest.raises(TicketError):
        verify(SECRET, token, now=NOW)


def test_secrets_and_lifetimes_are_checked_when_issuing() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        tickets.check_secret("short")
    with pytest.raises(ValueError):
        issue(SECRET, key_id="k1", role="viewer", site="shop-1", now=NOW, ttl_s=0)
    with pytest.raises(ValueError):
        issue(SECRET, key_id="k1", role="superuser", site="shop-1", now=NOW)
