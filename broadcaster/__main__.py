"""`python -m broadcaster`: outbox relay and WebSocket server."""

from __future__ import annotations

import sys

from broadcaster.service import Broadcaster
from broadcaster.settings import BroadcasterSettings
from infra import logs
from infra.runner import run_until_signalled


def main() -> int:
    settings = BroadcasterSettings()
    logs.setup(settings.log_level, "broadcaster")
    return run_until_signalled(Broadcaster(settings).run, settings.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
