"""The ``[clips]`` section: one MP4 clip per event, from a per-camera ring buffer of frames."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from monitor.config.base import _Strict


class ClipsConfig(_Strict):
    """What each event's clip covers, how it is sampled, and how much memory it may hold.

    Each camera keeps its last ``pre_roll_s`` seconds (and, while events are open, everything
    since the oldest one's start) as JPEGs at ``fps`` and ``max_width_px``; that ring is bounded
    by ``memory_limit_mb`` whatever happens, so a camera with events open for hours costs at
    most that much.
    """

    enabled: bool = Field(
        True, description="Write an MP4 clip for every announced event (H.264, plays in "
        "browsers). Costs one small JPEG encode per camera per clip frame, and at most "
        "memory_limit_mb of memory per camera.",
    )
    pre_roll_s: float = Field(
        5.0, ge=0, le=60, description="Seconds of footage before the event's start.",
    )
    post_roll_s: float = Field(
        5.0, ge=0, le=60, description="Seconds of footage after the event's end; the clip is "
        "written this long after the end.",
    )
    fps: float = Field(
        5.0, gt=0, le=30, description="Frame rate of the clips: frames are sampled from the "
        "stream at this rate (the camera's own rate when that is lower).",
    )
    max_width_px: int = Field(
        640, ge=64, le=3840, description="Frames wider than this are scaled down to it (aspect "
        "kept; H.264 needs even sizes, so they are rounded down to one).",
    )
    max_length_s: float = Field(
        120.0, ge=1, le=3600, description="Longest clip: an event still open this long after "
        "its pre-roll began gets its clip cut here (written then, while the event goes on).",
    )
    jpeg_quality: int = Field(
        80, ge=10, le=100, description="JPEG quality of the buffered frames (they are decoded "
        "again for the clip).",
    )
    crf: int = Field(
        28, ge=0, le=51, description="x264 constant rate factor: lower is better and bigger "
        "(23 is x264's default; 28 suits surveillance footage).",
    )
    memory_limit_mb: float = Field(
        64.0, ge=1, le=4096, description="Most memory one camera's frame buffer may hold; over "
        "it the oldest frames go first (a clip then starts later than its pre-roll).",
    )
    queue_size: int = Field(
        32, ge=1, le=10_000, description="Clips waiting for the writer thread (events open or "
        "in their post-roll, and clips due): a new event over it gets no clip (a warning and "
        "monitor_clips_dropped_total).",
    )
    dir: Path | None = Field(
        None, description="Where clips go, as {dir}/{camera}/{YYYY-MM-DD}/{event_id}.mp4. "
        "Default {state_dir}/clips; relative to the config file.",
    )

    @model_validator(mode="after")
    def _length_covers_the_rolls(self) -> ClipsConfig:
        if self.max_length_s <= self.pre_roll_s:
            raise ValueError(
                f"max_length_s ({self.max_length_s:g}) must be more than pre_roll_s "
                f"({self.pre_roll_s:g}): the clip would end before the event starts"
            )
        return self
