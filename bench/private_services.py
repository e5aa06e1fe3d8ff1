"""Fresh private RabbitMQ and PostgreSQL for one benchmark run: wiped, started, migrated, and
stopped afterwards, on ports and in a folder of their own so tests and `camcount up` are not
disturbed."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.lifetime import check_ports_free
from camcount import services
from migrations import upgrade


@contextlib.contextmanager
def private_services(state_dir: Path, amqp_port: int, pg_port: int,
                     note: str = "") -> Iterator[tuple[services.Endpoints, Path]]:
    """Yields the servers' endpoints and an empty folder for the run's logs."""
    os.environ.update(CAMCOUNT_STATE_DIR=str(state_dir), CAMCOUNT_AMQP_PORT=str(amqp_port),
                      CAMCOUNT_PG_PORT=str(pg_port))
    cfg = services.ServicesConfig.from_env("dev")
    logs_dir = cfg.state_dir.parent / f"{cfg.state_dir.name}-logs"
    services.stop_all(cfg)  # this bench's servers of an earlier run, crashed or not
    check_ports_free(
        {amqp_port: "RabbitMQ", cfg.amqp_mgmt_port: "RabbitMQ management",
         cfg.amqp_dist_port: "RabbitMQ distribution", pg_port: "PostgreSQL"},
        [amqp_port, pg_port], str(cfg.state_dir),
        "choose other ports (--amqp-port, --pg-port)")
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    shutil.rmtree(logs_dir, ignore_errors=True)
    logs_dir.mkdir(parents=True)
    print(f"{note}starting private RabbitMQ :{amqp_port} and PostgreSQL :{pg_port} in "
          f"{cfg.state_dir}", file=sys.stderr, flush=True)
    try:
        endpoints = services.start_all(cfg)
        upgrade(endpoints.database_url)
        yield endpoints, logs_dir
    finally:
        services.stop_all(cfg)
