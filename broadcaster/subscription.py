"""What a WebSocket client asked for, within what its ticket's site lets it see. Pure.

Client -> server (one message replaces the previous subscription):
    {"op": "subscribe", "cameras": ["cam-1", ...] | "*", "regions": ["eu-west", ...],
     "alerts": true, "resume_from": 123}
- `cameras`: ids, or "*" for every camera of the ticket's site (of every site for a ticket of
  every site). Left out: "*" when no regions are named, else none (regions only).
- `regions`: every camera of these regions, among those of the ticket's site.
- `alerts` (default true): alerts of the ticket's site, whatever the cameras subscribed; fleet-
  wide alerts (a worker, a queue) only for a ticket of every site. false: counts only.
- `resume_from`: the last event_seq received; the events after it that match are sent first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from broadcaster.events import Event
from contracts.access import site_visible

ALL = "*"
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class SubscribeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["subscribe"]
    cameras: list[Name] | Literal["*"] | None = None
    regions: list[Name] = Field(default_factory=list)
    alerts: bool = True
    resume_from: int | None = Field(default=None, ge=0)

    @property
    def items(self) -> int:
        return (0 if self.cameras in (None, ALL) else len(self.cameras)) + len(self.regions)

    def named_cameras(self) -> list[str]:
        return [] if self.cameras is None or self.cameras == ALL else list(self.cameras)


@dataclass(frozen=True)
class Subscription:
    site: str  # the ticket's: a site, or "*" for every site
    cameras: frozenset[str] | None  # None: every camera the site sees
    regions: frozenset[str]
    alerts: bool

    @classmethod
    def of(cls, message: SubscribeMessage, site: str) -> Subscription:
        if message.cameras == ALL or (message.cameras is None and not message.regions):
            cameras = None
        else:
            cameras = frozenset(message.named_cameras())
        return cls(site, cameras, frozenset(message.regions), message.alerts)

    def wants(self, event: Event) -> bool:
        if not site_visible(self.site, event.site):
            return False
        if event.topic == "alerts":
            return self.alerts
        return (self.cameras is None or event.camera_id in self.cameras
                or event.region in self.regions)

    def describe(self) -> dict[str, object]:
        """The subscription as acknowledged to the client."""
        return {"cameras": ALL if self.cameras is None else sorted(self.cameras),
                "regions": sorted(self.regions), "alerts": self.alerts}
