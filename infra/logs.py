"""One logging format for every role: time, level, role/instance, message."""

from __future__ import annotations

import logging
import sys


def setup(level: str, instance: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s [{instance}] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aio-pika/aiormq log every reconnect attempt at INFO with stack traces; keep them quieter.
    for noisy in ("aiormq", "aio_pika", "aiortsp", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
