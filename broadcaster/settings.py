"""Broadcaster settings."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from contracts.settings import CommonSettings
from contracts.tickets import check_secret


class BroadcasterSettings(CommonSettings):
    ws_host: str = "127.0.0.1"
    ws_port: int = Field(default=8765, ge=0, le=65535)
    # Required, no default: a broadcaster that cannot check tickets must not start at all.
    ws_ticket_secret: SecretStr = Field(
        description="verifies WebSocket tickets; the same as the registry's WS_TICKET_SECRET")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8080", "http://localhost:8080"],
        description="Origin headers accepted on the upgrade (comma-separated): the dashboard's "
                    "scheme://host:port, as the browser sends it")
    allow_no_origin: bool = Field(
        default=True, description="accept a ticket-holding client that sends no Origin (not a "
        "browser: browsers always send one, so this opens nothing to other web pages)")
    max_clients: int = Field(default=10_000, ge=1, description="more connections get 503")
    client_queue_size: int = Field(default=2048, ge=1, description="events waiting for one "
                                   "client; a client that lets it fill is dropped (1013)")
    max_message_bytes: int = Field(default=64 * 1024, ge=1024, description="larger client "
                                   "frames close the connection (1009)")
    max_subscription_items: int = Field(default=1000, ge=1, description="cameras + regions "
                                        "in one subscribe message")
    replay_page: int = Field(default=500, ge=1, description="outbox rows per replay query")
    max_replay_events: int = Field(
        default=100_000, ge=1, description="a resume_from further behind the newest event is "
        "refused: the client reloads its state over the REST API instead")
    camera_refresh_s: float = Field(default=5.0, gt=0, description="camera -> site and region "
                                    "cache: re-read this often, and on a miss")
    camera_miss_refresh_s: float = Field(default=1.0, ge=0, description="at most one re-read "
                                         "for unknown cameras this often")
    outbox_gap_timeout_s: float = Field(
        default=5.0, gt=0, description="an outbox id still missing after this is taken as "
        "never coming (see broadcaster/sequencer.py)")
    poll_interval_s: float = Field(default=1.0, gt=0, description="fallback when NOTIFY is lost")
    relay_batch: int = Field(default=500, ge=1)

    @field_validator("ws_ticket_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        check_secret(value.get_secret_value())
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> Self:
        # One relay round hands every client up to relay_batch events at once: a smaller queue
        # would drop fast clients too.
        if self.client_queue_size < self.relay_batch:
            raise ValueError(f"client_queue_size ({self.client_queue_size}) must be at least "
                             f"relay_batch ({self.relay_batch})")
        return self
