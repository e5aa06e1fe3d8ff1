"""Response models for what ingest reports: each camera's status and its history, and the
ingest nodes that share the cameras through leases."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.camera_status import CameraStatus


class CameraStats(BaseModel):
    """Ingest's counters as stored in camera_status.stats. The field list is the allowlist:
    whatever else a node writes into the JSONB is not served."""

    fps: float = Field(default=0.0, description="frames/s sampled lately")
    decoded: int = 0
    sampled: int = 0
    dropped: int = 0
    reconnects: int = 0


class CameraStatusOut(BaseModel):
    status: CameraStatus
    reason: str
    since: datetime = Field(description="when the camera entered this status")
    node_id: str | None = Field(description="the ingest node that judged it; null if none")
    node_alive: bool | None = Field(
        description="whether that node's heartbeat is current (database clock); a status from "
        "a dead node is stale. null when no node judged it")
    last_frame_at: datetime | None
    stats: CameraStats


class CameraEventOut(BaseModel):
    # Plain strings, unlike CameraStatusOut.status: camera_events has no CHECK constraint and
    # keeps history across releases, so a status this build does not know must still read.
    id: int
    camera_id: str
    status: str
    previous: str | None
    reason: str
    at: datetime
    node_id: str | None


class IngestNodeOut(BaseModel):
    id: str
    boot_id: str
    capacity: int = Field(description="most cameras this node will pull")
    started_at: datetime
    expires_at: datetime
    alive: bool = Field(description="expires_at is still ahead on the database clock")
    draining: bool
    cameras: int = Field(description="cameras whose lease it holds now")
    camera_ids: list[str] = Field(description="those of them the key's site sees")
