"""`python -m workers.pool` (`camcount workers`): the worker pool manager."""

from __future__ import annotations

import logging
import os
import sys

from pydantic import ValidationError

from infra import logs
from infra.runner import run_until_signalled
from workers.pool.gpus import discover_gpus
from workers.pool.service import WorkerPool
from workers.pool.settings import PoolSettings
from workers.pool.worker_types import WorkerTypesError, load_worker_types

log = logging.getLogger("camcount.pool")


def main() -> int:
    try:
        settings = PoolSettings()
    except ValidationError as exc:
        print(f"camcount workers: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, f"pool:{settings.pool_id}")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per /health poll otherwise
    try:
        types = load_worker_types(settings.worker_type, settings.worker_types_file,
                                  pool_id=settings.pool_id, max_workers=settings.max_workers)
        pool = WorkerPool(settings, types, manager_env=os.environ,
                          gpus=discover_gpus(os.environ))
    except (WorkerTypesError, ValueError) as exc:
        log.error("cannot start the worker pool: %s", exc)
        return 2
    # The drain gives workers DRAIN_TIMEOUT_S, then SIGKILLs them.
    return run_until_signalled(pool.run, settings.drain_timeout_s + settings.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
