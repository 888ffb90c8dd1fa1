"""The whole config file: every section, and the checks that span sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from monitor.config.base import NAME_MAX_LENGTH, SNAPSHOT_PATH_MAX_LENGTH, _Strict
from monitor.config.cameras import CameraConfig
from monitor.config.clips import ClipsConfig
from monitor.config.detection import DetectorConfig, MotionConfig, TrackerConfig
from monitor.config.events import EventsConfig, ReviewsConfig, TemporalConfig
from monitor.config.ownership import Ownership
from monitor.config.service import (
    DaemonConfig,
    DatabaseConfig,
    HomeAssistantConfig,
    MetricsConfig,
    MqttConfig,
    RetentionConfig,
    SourceConfig,
)


class Config(_Strict):
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    reviews: ReviewsConfig = Field(default_factory=ReviewsConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    cameras: Annotated[list[CameraConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _alert_zones_exist(self) -> Config:
        zones = {zone.name for camera in self.cameras for zone in camera.zones}
        unknown = sorted(set(self.reviews.alert_zones) - zones)
        if unknown:
            raise ValueError(
                f"reviews.alert_zones names no zone of any camera: {', '.join(unknown)} "
                f"(zones: {', '.join(sorted(zones)) or 'none'})"
            )
        return self

    @model_validator(mode="after")
    def _snapshot_paths_fit_the_store(self) -> Config:
        # <state_dir>/snapshots/<camera>/<uuid>.jpg is stored with each event; a path longer
        # than the column would fail the event's whole transaction on PostgreSQL.
        longest = SNAPSHOT_PATH_MAX_LENGTH - len("/snapshots/") - NAME_MAX_LENGTH - len("/.jpg") - 36
        if len(str(self.daemon.state_dir)) > longest:
            raise ValueError(
                f"daemon.state_dir: {len(str(self.daemon.state_dir))} characters long; at most "
                f"{longest} (snapshot paths under it are stored with each event)"
            )
        return self

    @model_validator(mode="after")
    def _clip_paths_fit_the_store(self) -> Config:
        # {dir}/<camera>/YYYY-MM-DD/<uuid>.mp4 is stored with each event, like a snapshot path.
        longest = SNAPSHOT_PATH_MAX_LENGTH - NAME_MAX_LENGTH - len("//YYYY-MM-DD/.mp4") - 36
        if len(str(self.clips_dir())) > longest:
            raise ValueError(
                f"clips.dir: {len(str(self.clips_dir()))} characters long; at most {longest} "
                "(clip paths under it are stored with each event)"
            )
        return self

    def clips_dir(self) -> Path:
        """Where clips are written: ``[clips] dir``, by default ``{state_dir}/clips``."""
        return self.clips.dir if self.clips.dir is not None else self.daemon.state_dir / "clips"

    @model_validator(mode="after")
    def _unique_cameras(self) -> Config:
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"camera names must be unique, repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _owned_cameras_exist(self) -> Config:
        unknown = sorted(set(self.daemon.cameras or ()) - {c.name for c in self.cameras})
        if unknown:
            raise ValueError(f"daemon.cameras: no camera named {', '.join(unknown)} in [[cameras]]")
        return self

    def owned(self, ownership: Ownership | None = None) -> Config:
        """This config with only the cameras this daemon runs (``ownership``: by default
        ``[daemon]``'s). May hold none: a shard can be empty, and such a daemon still serves its
        availability topic, outbox and retention."""
        ownership = self.daemon.ownership() if ownership is None else ownership
        return self.model_copy(
            update={"cameras": [c for c in self.cameras if ownership.owns(c.name)]}
        )

    def database_url(self) -> str:
        """The database URL with a relative SQLite path placed under state_dir."""
        return _database_url(self.database.url, self.daemon.state_dir)


def _database_url(url: str, state_dir: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((state_dir / url[len(prefix):]).resolve())
    return url
