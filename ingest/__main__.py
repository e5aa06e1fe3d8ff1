"""`python -m ingest`: an ingest node."""

from __future__ import annotations

import sys

from infra import logs
from infra.runner import run_until_signalled
from ingest.service import Ingest
from ingest.settings import IngestSettings


def main() -> int:
    settings = IngestSettings()
    logs.setup(settings.log_level, settings.node_id)
    return run_until_signalled(Ingest(settings).run, settings.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
