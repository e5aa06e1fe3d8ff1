"""The one command: `camcount <role|workers|up|simulate|services|migrate|keys>`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

ROLES = ("registry", "broadcaster", "balancer", "worker", "ingest")


def _role(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        # Imported lazily: one role's dependencies are not loaded to run another.
        if name == "registry":
            from registry.__main__ import main as registry_main

            return registry_main()
        if name == "broadcaster":
            from broadcaster.__main__ import main as broadcaster_main

            return broadcaster_main()
        if name == "balancer":
            from balancer.__main__ import main as balancer_main

            return balancer_main()
        if name == "worker":
            from workers.__main__ import main as worker_main

            return worker_main()
        from ingest.__main__ import main as ingest_main

        return ingest_main()

    return run


def _workers(_: argparse.Namespace) -> int:
    from workers.pool.__main__ import main as pool_main

    return pool_main()


def _videos(_: argparse.Namespace) -> int:
    from videos.__main__ import main as videos_main

    return videos_main()


def _migrate(_: argparse.Namespace) -> int:
    from contracts.settings import CommonSettings
    from migrations import upgrade

    upgrade(CommonSettings().database_url)
    print("database migrated to head")
    return 0


def _up(args: argparse.Namespace) -> int:
    from camcount.stack import run_stack

    return run_stack(keep_services=args.keep_services, open_browser=not args.no_browser)


def build_parser() -> argparse.ArgumentParser:
    from camcount import keys_cli, model_export, services_cli
    from simulator import cli as simulator_cli

    parser = argparse.ArgumentParser(prog="camcount", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for role in ROLES:
        sub.add_parser(role, help=f"run the {role} role (settings from the environment)"
                       ).set_defaults(func=_role(role))
    sub.add_parser("workers", help="run a pool of workers: NUM_WORKERS processes, restarted, "
                   "drained, scaled over HTTP (POOL_HTTP_PORT)").set_defaults(func=_workers)
    sub.add_parser("videos", help="run a video runner: splits recorded video jobs into "
                   "segments for the worker pool and merges their counts"
                   ).set_defaults(func=_videos)
    up = sub.add_parser("up", help="run the whole system locally and open the dashboard")
    up.add_argument("--keep-services", action="store_true",
                    help="leave RabbitMQ and PostgreSQL running on exit")
    up.add_argument("--no-browser", action="store_true")
    up.set_defaults(func=_up)
    sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)"
                   ).set_defaults(func=_migrate)
    services_cli.add_parser(sub)
    keys_cli.add_parser(sub)
    simulator_cli.add_parser(sub)
    model_export.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
