"""`camcount services start|stop|status|env`: the command line over camcount.services."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from camcount.services import (
    PROFILES,
    Endpoints,
    ServiceError,
    ServicesConfig,
    start_all,
    status,
    stop_all,
)


def _cli(args: argparse.Namespace) -> int:
    cfg = ServicesConfig.from_env(args.profile)
    if args.action == "env":
        for key, value in Endpoints.for_config(cfg).as_env().items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if args.action == "status":
        states = status(cfg)
        for name, state in states.items():
            print(f"{name}: {state}")
        print(f"state dir: {cfg.state_dir}")
        return 0 if all(s == "running" for s in states.values()) else 3
    try:
        if args.action == "start":
            start_all(cfg)
        else:
            stop_all(cfg)
    except (ServiceError, OSError, subprocess.SubprocessError) as exc:
        print(f"camcount services {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "services",
        help="start/stop the private local RabbitMQ and PostgreSQL servers",
        description="Manage private RabbitMQ and PostgreSQL servers under .state/<profile>.",
    )
    parser.add_argument("action", choices=["start", "stop", "status", "env"])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.set_defaults(func=_cli)
