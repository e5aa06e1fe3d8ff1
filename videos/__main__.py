"""`python -m videos`: one video runner process."""

from __future__ import annotations

import sys

from infra import logs
from infra.runner import run_until_signalled
from videos.service import VideoRunner
from videos.settings import VideoRunnerSettings


def main() -> int:
    settings = VideoRunnerSettings()
    logs.setup(settings.log_level, settings.runner_id)
    return run_until_signalled(VideoRunner(settings).run, settings.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
