"""Simulator configuration: validated mount specs, the CLI mount syntax, the settings model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.scenes import MIN_HEIGHT_PX, MIN_WIDTH_PX, SyntheticScene

MountKind = Literal["synthetic", "file"]
MOUNT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 360
DEFAULT_FPS = 25.0


class MountSpec(BaseModel):
    """One stream served at rtsp://host:port/<name>.

    width, height and fps left as None mean 640x360 at 25 fps for a synthetic mount and the
    file's own size and rate for a file mount (given values resize / re-time the file).

    preencode_s: encode that many seconds (rounded up to whole keyframe intervals) once at
    start and replay them in a loop, never ending (a file is looped to fill them); each session
    then starts after a random delay below one keyframe interval, so that many sessions of one
    mount do not send their large keyframes in lockstep. For load tests: a session costs
    packetization only.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=MOUNT_NAME_PATTERN)
    kind: MountKind = "synthetic"
    seed: int = 0
    crossings: int = Field(default=6, ge=0, le=10_000)
    fps: float | None = Field(default=None, gt=0, le=120)
    width: int | None = Field(default=None, ge=MIN_WIDTH_PX, le=4096)
    height: int | None = Field(default=None, ge=MIN_HEIGHT_PX, le=4096)
    warmup_s: float = Field(default=2.0, ge=0, le=3600)
    loop: bool = False
    path: Path | None = None
    preencode_s: float | None = Field(default=None, gt=0, le=600)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.kind == "file" and self.path is None:
            raise ValueError("a file mount needs path=...")
        if self.kind == "synthetic" and self.path is not None:
            raise ValueError("path= only applies to file mounts")
        scene_only = sorted({"seed", "crossings", "warmup_s"} & self.model_fields_set)
        if self.kind == "file" and scene_only:
            raise ValueError(f"{', '.join(scene_only)} only apply to synthetic mounts")
        for value, label in ((self.width, "width"), (self.height, "height")):
            # 4:2:0 chroma halves both dimensions; x264 refuses odd sizes.
            if value is not None and value % 2:
                raise ValueError(f"{label} must be even, got {value}")
        return self

    @property
    def effective_fps(self) -> float:
        """The rate of a synthetic mount (a file mount's default comes from the file)."""
        return self.fps if self.fps is not None else DEFAULT_FPS

    def scene(self) -> SyntheticScene:
        if self.kind != "synthetic":
            raise ValueError(f"mount {self.name} is a {self.kind} mount, it has no scene")
        return SyntheticScene(
            seed=self.seed,
            crossings=self.crossings,
            width=self.width or DEFAULT_WIDTH,
            height=self.height or DEFAULT_HEIGHT,
            warmup_s=self.warmup_s,
            loop=self.loop,
        )


class SimulatorSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8554, ge=0, le=65535)  # 0 picks a free port
    mounts: tuple[MountSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [m.name for m in self.mounts]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate mount names: {', '.join(duplicates)}")
        return self


# Options are split on commas that start a new `key=`, so a path may itself contain commas.
_OPTION_SPLIT = re.compile(r",(?=\s*[A-Za-z_]+\s*=)")


def parse_mount(text: str) -> MountSpec:
    """Parse `NAME:KIND[:key=value,...]`, e.g. `cam1:synthetic:seed=7,crossings=6,fps=25`
    or `clip:file:path=/x.mp4,loop=true`. Raises ValueError with a readable message."""
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"mount {text!r}: expected NAME:KIND[:key=value,...]")
    name, kind = parts[0].strip(), parts[1].strip()
    fields: dict[str, Any] = {"name": name, "kind": kind}
    options = parts[2] if len(parts) == 3 else ""
    for item in _OPTION_SPLIT.split(options) if options.strip() else []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"mount {name!r}: option {item!r} is not key=value")
        if key in ("name", "kind"):
            raise ValueError(f"mount {name!r}: {key} goes before the options, not in them")
        if key in fields:
            raise ValueError(f"mount {name!r}: option {key!r} given twice")
        fields[key] = value.strip()
    try:
        return MountSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(_describe_error(err) for err in exc.errors())
        raise ValueError(f"mount {name!r}: {problems}") from None


def _describe_error(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    field = ".".join(str(part) for part in error["loc"])
    return f"{field}: {message}" if field else message
