"""Cameras and what is drawn on them: zones, crowds, counted lines."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from monitor.config.base import (
    _NAME,
    MIN_ZONE_AREA,
    RESERVED_CAMERA_NAMES,
    _normalised_points,
    _Strict,
    _topic_level_name,
    path_too_long,
)
from monitor.redact import redact_url
from monitor.types import Direction


class ZoneConfig(_Strict):
    name: str = Field(
        ..., min_length=1, max_length=64,
        description="Zone name, used in events and topics: letters, digits, '-' and '_'.",
    )

    @field_validator("name")
    @classmethod
    def _valid_zone_name(cls, value: str) -> str:
        return _topic_level_name(value, "zone name")
    polygon: list[tuple[float, float]] = Field(
        ..., min_length=3, description="Corners as [x, y] normalised to 0..1 of the frame."
    )

    @field_validator("polygon")
    @classmethod
    def _normalised(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        _normalised_points(value, "corner")
        # Shoelace formula. A polygon without area (corners on one line, or repeated) contains no
        # point: the zone would never see anyone, silently.
        area = abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1)
                       in zip(value, value[1:] + value[:1], strict=True))) / 2
        if area < MIN_ZONE_AREA:
            raise ValueError(
                f"the polygon has no area ({area:.2g} of the frame): its corners lie on one line "
                "or repeat"
            )
        return value

    crowd: CrowdConfig | None = Field(
        None, description="Raise a crowd event when this many objects are in the zone (None: off)."
    )


class CrowdConfig(_Strict):
    """A crowd in a zone: at least ``min_objects`` objects of ``label`` in it for ``for_s``."""

    label: str = Field("person", description="The label counted.")
    min_objects: int = Field(3, ge=2, le=1000, description="Objects in the zone that make a crowd.")
    for_s: float = Field(
        5.0, ge=0, le=86400, description="Seconds the zone must hold them before the event starts."
    )


class LineConfig(_Strict):
    """A line whose crossings are counted (per label and direction) and raise ``line_crossing``."""

    name: str = Field(
        ..., min_length=1, max_length=64,
        description="Line name, used in events and topics: letters, digits, '-' and '_'.",
    )
    points: list[tuple[float, float]] = Field(
        ..., min_length=2, max_length=2,
        description="Its two ends as [x, y] normalised to 0..1. Walking from the first to the "
        "second, crossing from the left-hand to the right-hand side (on screen) is 'in'.",
    )
    alert_directions: list[Direction] = Field(
        default_factory=lambda: [Direction.IN, Direction.OUT],
        description="Crossings in these directions are published as line_crossing alerts; the "
        "others are recorded and counted only.",
    )
    hysteresis: float = Field(
        0.02, ge=0, le=0.5, description="A foot point this close to the line (normalised "
        "units) stays on the side it came from: a person standing on the line is not counted "
        "back and forth.",
    )

    @field_validator("name")
    @classmethod
    def _valid_line_name(cls, value: str) -> str:
        return _topic_level_name(value, "line name")

    @field_validator("points")
    @classmethod
    def _two_distinct_points(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        _normalised_points(value, "point")
        if value[0] == value[1]:
            raise ValueError(f"the line's two points are the same point {list(value[0])}")
        return value


class CameraConfig(_Strict):
    name: str = Field(
        ...,
        max_length=64,
        description="Unique camera name: letters, digits, '-' and '_' (the store keeps 64).",
    )
    url: str = Field(..., min_length=1, description="rtsp://, http(s):// or a local video file.")
    detect_fps: float = Field(5.0, gt=0, le=60, description="Detector runs at most this often.")
    labels: list[str] = Field(default_factory=lambda: ["person"], min_length=1)
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    loop_file: bool = Field(True, description="A local file restarts at its end (demos, tests).")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be letters, digits, '-' or '_' (it is part of MQTT topics)")
        if value in RESERVED_CAMERA_NAMES:
            raise ValueError(f"camera name {value!r} is reserved: it is a topic of the daemon's own")
        return value

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: list[str]) -> list[str]:
        for label in value:
            _topic_level_name(label, "label")
        if len(value) != len(set(value)):
            raise ValueError(f"labels must be unique, got {value}")
        return value

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme and any(c.isspace() for c in value):
            # No URL holds whitespace, and a log line could not mask a password cut by one.
            raise ValueError("a URL must not contain whitespace (write a space as %20)")
        if scheme and scheme not in {"rtsp", "rtsps", "http", "https", "file"}:
            raise ValueError(f"unsupported scheme '{scheme}://' (use rtsp://, http(s):// or a file)")
        if scheme in {"rtsp", "rtsps", "http", "https"}:
            authority = value.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
            if authority.startswith("["):  # IPv6 literal: [addr] or [addr]:port
                host, _, port = authority.partition("]")
                port = port.removeprefix(":")
            else:
                host, _, port = authority.partition(":")
            if not host:
                raise ValueError(f"'{redact_url(value)}' has no host")
            if port and not port.isdigit():
                # Most likely a password holding a raw '/', which ends the host part early. Do not
                # echo the URL: the password could not be masked in it.
                raise ValueError(
                    "the host part ends in a port that is not a number; a password containing "
                    "'/' must be written as %2F"
                )
        if not scheme and (problem := path_too_long(value)) is not None:
            raise ValueError(problem)
        try:
            is_file = Path(value).is_file() if not scheme else True
        except OSError as exc:  # e.g. a folder the daemon's user may not enter
            raise ValueError(f"cannot read video file {redact_url(value)}: {exc.strerror}") from None
        if not is_file:
            raise ValueError(
                f"no such video file: {redact_url(value)} (a camera URL needs rtsp:// or http://)"
            )
        return value

    @model_validator(mode="after")
    def _unique_zones(self) -> CameraConfig:
        names = [z.name for z in self.zones]
        if len(names) != len(set(names)):
            raise ValueError(f"zone names must be unique, got {names}")
        # A line's events carry its name where a zone's carry the zone's: one namespace.
        lines = [line.name for line in self.lines]
        if len(set(names + lines)) != len(names) + len(lines):
            raise ValueError(f"zone and line names must be unique together, got {names + lines}")
        for zone in self.zones:
            if zone.crowd is not None and zone.crowd.label not in self.labels:
                raise ValueError(
                    f"zone {zone.name!r}: crowd label {zone.crowd.label!r} is not one of the "
                    f"camera's labels {self.labels}"
                )
        return self
