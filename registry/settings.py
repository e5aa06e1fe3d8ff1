"""Registry settings."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from contracts.settings import CommonSettings
from contracts.tickets import DEFAULT_TTL_S, MAX_TTL_S, check_secret
from registry.camera_urls import (
    DEFAULT_CAMERA_NETWORKS,
    DEFAULT_CAMERA_PORTS,
    DEFAULT_SERVICE_PORTS,
    IPNetwork,
)
from registry.webhook_urls import EVERYWHERE
from videos.settings import VideoApiSettings

DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard"


class RegistrySettings(VideoApiSettings, CommonSettings):
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    broadcaster_public_url: str = "ws://127.0.0.1:8765/ws"
    worker_down_after_s: float = Field(default=5.0, gt=0)
    dashboard_dir: Path = DASHBOARD_DIR
    max_page_size: int = 500
    report_timeout_s: float = Field(default=10.0, gt=0, le=300,
                                    description="longest a report's queries may run (503)")
    pool_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="worker pool managers' APIs (comma-separated), "
                                          "shown in GET /api/pools")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024,
                                description="larger request bodies are refused with 413")
    rate_limit_per_s: float = Field(default=20.0, gt=0,
                                    description="per API key, unless the key sets its own")
    rate_limit_burst: int = Field(default=60, ge=1)
    api_key_cache_s: float = Field(default=5.0, ge=0,
                                   description="a revoked key is refused within this time")
    media_dir: Path | None = Field(
        default=None, description="file:// camera urls must point under it; unset: refused")
    ws_ticket_secret: SecretStr | None = Field(
        default=None, description="signs WebSocket tickets; the broadcaster's WS_TICKET_SECRET. "
        "Unset: POST /api/ws-ticket answers 503")
    ws_ticket_ttl_s: float = Field(default=DEFAULT_TTL_S, gt=0, le=MAX_TTL_S)

    @field_validator("media_dir", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # MEDIA_DIR= would otherwise become Path(""), the working directory: everything in it.
        return None if value == "" else value

    @field_validator("ws_ticket_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value())
        return value

    # Camera URL security (registry/camera_urls.py). Lists: comma-separated or JSON.
    camera_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_CAMERA_PORTS),
        description="ports a camera url may name (or default to: rtsp 554, rtsps 322, http 80, "
                    "https 443)")
    service_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SERVICE_PORTS),
        description="never allowed in a camera url, even when in camera_ports; the ports of "
                    "HTTP_PORT, OPS_PORT and the URLs of RabbitMQ, PostgreSQL, the broadcaster "
                    "and the worker pools are added")
    camera_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=lambda: [ipaddress.ip_network(n) for n in DEFAULT_CAMERA_NETWORKS],
        description="every address a camera's host resolves to must lie inside one of these "
                    "(loopback, link-local, multicast and the like never do)")
    camera_resolve_timeout_s: float = Field(default=5.0, gt=0,
                                            description="name resolution of a camera's host")
    webhook_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=lambda: [ipaddress.ip_network(n) for n in EVERYWHERE],
        description="every address an alert webhook's host resolves to must lie inside one of "
                    "these (loopback, link-local, multicast and the like never do, nor the "
                    "service ports; registry/webhook_urls.py)")

    @field_validator("camera_ports", "service_ports", "camera_networks", "webhook_networks",
                     "pool_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    # Alerts (registry/alerting/): one registry evaluates at a time, the others stand by.
    alert_evaluator: bool = Field(default=True, description="take part in evaluating alert "
                                  "rules (the one holding the lock evaluates)")
    alert_eval_s: float = Field(default=1.0, gt=0, le=60, description="between evaluations")
    alert_stale_after_s: float = Field(
        default=30.0, gt=0, description="a camera's occupancy older than this is unknown, not "
                                        "a value (an alert neither fires nor resolves on it)")
    rabbitmq_management_url: str = Field(
        default="http://guest:guest@127.0.0.1:15682",
        description="RabbitMQ's management API: queue depths for queue_lag and dlq_not_empty")
    rabbitmq_management_timeout_s: float = Field(default=2.0, gt=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="one webhook POST")
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_initial_s: float = Field(default=0.5, ge=0)
    webhook_backoff_max_s: float = Field(default=30.0, ge=0)
    webhook_queue_size: int = Field(default=1000, ge=1, description="deliveries waiting; "
                                    "beyond it new ones are dropped and counted")
    webhook_concurrency: int = Field(default=4, ge=1, le=64, description="delivery lanes; a "
                                     "URL always uses the same lane (its events in order)")
