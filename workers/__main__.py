"""`python -m workers`: one worker process."""

from __future__ import annotations

import sys

from infra import logs
from infra.runner import run_until_signalled
from workers.service import Worker
from workers.settings import WorkerSettings


def main() -> int:
    settings = WorkerSettings()
    logs.setup(settings.log_level, settings.worker_id)
    # The drain finishes the batch in hand, which may take up to JOB_TIMEOUT_S.
    return run_until_signalled(Worker(settings).run,
                               settings.job_timeout_s + settings.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
