"""`camcount keys create|list|revoke`: API keys from the command line (DATABASE_URL), for the
first admin key and for operators without one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from contracts.access import ALL_SITES, ROLES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def _engine() -> contextlib.AbstractAsyncContextManager[AsyncEngine]:
    from contracts.settings import CommonSettings
    from infra.db import short_lived_engine

    return short_lived_engine(CommonSettings().database_url)


async def _create(args: argparse.Namespace) -> int:
    from registry import api_keys

    async with _engine() as engine:
        stored, token = await api_keys.create(engine, name=args.name, role=args.role,
                                              site=args.site, rate_per_s=args.rate_per_s,
                                              burst=args.burst)
    print(f"created key {stored.id} ({stored.role}, site {stored.site}); shown this once:")
    print(token)
    return 0


async def _list(_: argparse.Namespace) -> int:
    from registry import api_keys

    async with _engine() as engine:
        keys = await api_keys.list_keys(engine, None, limit=10_000, offset=0)
    for key in keys:
        state = "revoked" if key.revoked_at else "active"
        print(f"{key.id}  {key.role:<8} {key.site:<20} {state:<8} {key.name}")
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    from registry import api_keys

    async with _engine() as engine:
        found = await api_keys.revoke(engine, args.key_id, None)
    if found is None:
        print(f"no key {args.key_id!r}")
        return 1
    print(f"revoked {found.id}")
    return 0


def _run(args: argparse.Namespace) -> int:
    handlers: dict[str, Any] = {"create": _create, "list": _list, "revoke": _revoke}
    result: int = asyncio.run(handlers[args.keys_command](args))
    return result


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list or revoke API keys (DATABASE_URL)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--site", default=ALL_SITES,
                        help=f"a site, or {ALL_SITES!r} for every site (default)")
    create.add_argument("--rate-per-s", type=float, default=None)
    create.add_argument("--burst", type=int, default=None)
    keys_sub.add_parser("list", help="every key (never the secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.set_defaults(func=_run)
