"""`python -m balancer`: the balancer process."""

from __future__ import annotations

import sys

from balancer.service import Balancer
from balancer.settings import BalancerSettings
from infra import logs
from infra.runner import run_until_signalled


def main() -> int:
    settings = BalancerSettings()
    logs.setup(settings.log_level, settings.balancer_id)
    return run_until_signalled(Balancer(settings).run, settings.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
