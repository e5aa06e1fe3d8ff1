"""Who may do what: API key roles and sites. Shared by the registry (REST) and the
broadcaster (WebSocket tickets); no I/O.

A key belongs to one site (a shop, a station) or to every site (`ALL_SITES`). A key never
learns whether a camera of another site exists: such a camera reads as not found.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)

# admin: keys, cameras, rules; operator: cameras, lines, rules, acknowledgements; viewer: reads.
_RANK = {"viewer": 0, "operator": 1, "admin": 2}

ALL_SITES = "*"
DEFAULT_SITE = "default"


def role_allows(role: str, needed: str) -> bool:
    return _RANK[role] >= _RANK[needed]


def site_visible(key_site: str, site: str | None) -> bool:
    """Whether a key of `key_site` sees a thing of `site` (None: fleet-wide, e.g. a worker-down
    alert, which only keys of every site see)."""
    return key_site == ALL_SITES or (site is not None and site == key_site)
