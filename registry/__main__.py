"""`python -m registry`: the registry process (API, dashboard, heartbeat consumer)."""

from __future__ import annotations

import sys

from infra import logs
from infra.runner import run_until_signalled
from registry.service import Registry
from registry.settings import RegistrySettings


def main() -> int:
    settings = RegistrySettings()
    logs.setup(settings.log_level, "registry")
    return run_until_signalled(Registry(settings).run, settings.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
