"""Values that pass between pipeline stages.

Every stage boundary carries one of these frozen dataclasses, never a tuple or a dict of domain
fields. Pixel coordinates are floats in the frame's own pixel space; datetimes are UTC-aware;
durations inside the pipeline are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np


# The daemon instance of a store writer, outbox reader or MQTT client not told its own (tests,
# tools); the daemon always passes ``[daemon] instance``.
LOCAL_INSTANCE = "local"


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels: (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom-centre point: where a standing person touches the ground."""
        return ((self.x1 + self.x2) / 2.0, self.y2)

    def as_list(self) -> list[float]:
        return [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)]


@dataclass(frozen=True, slots=True)
class Motion:
    """Where a camera's picture changed since the frame it last handed to the detector.

    Attributes:
        regions: boxes around the changed areas, in the frame's pixels (empty: nothing moved).
        changed_fraction: share of the picture that changed, 0..1.
    """

    regions: tuple[Box, ...]
    changed_fraction: float


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture from a camera.

    Attributes:
        camera: camera name from config.
        index: frame counter of this camera since the daemon started (monotonic, survives reconnects).
        image: BGR uint8 array, shape (H, W, 3). Never mutated after capture.
        captured_at: wall-clock UTC time the frame was read.
        monotonic: ``time.monotonic()`` at read; used for all durations.
        motion: what moved since this camera's previous detector frame; None when unknown
            (motion detection off, or no background yet), which means "look at everything".
    """

    camera: str
    index: int
    image: np.ndarray = field(repr=False, compare=False)
    captured_at: datetime
    monotonic: float
    motion: Motion | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class Detection:
    """One object the detector found in one frame.

    Attributes:
        box: pixel box.
        score: detector confidence of the winning class, 0..1.
        label: the watched label this class maps to (e.g. ``person``).
        class_name: the model's own class name (e.g. ``Normal`` or ``Fall``).
    """

    box: Box
    score: float
    label: str
    class_name: str


@dataclass(frozen=True, slots=True)
class Detections:
    """Everything the detector found in one frame, routed back to the frame's camera.

    Attributes:
        held: not inferred: nothing moved since the camera's last inferred frame, whose
            detections these are. They keep tracks and events alive but confirm nothing.
    """

    frame: Frame
    items: tuple[Detection, ...]
    held: bool = False


@dataclass(frozen=True, slots=True)
class Track:
    """One detection associated with a persistent per-camera track id."""

    camera: str
    track_id: int
    detection: Detection


@dataclass(frozen=True, slots=True)
class Tracks:
    """The tracker's view of one frame: the tracks seen in it (``held``: see ``Detections``)."""

    frame: Frame
    items: tuple[Track, ...]
    held: bool = False


class EventKind(str, enum.Enum):
    PRESENCE = "presence"
    INTRUSION = "intrusion"
    LOITERING = "loitering"
    FALL = "fall"
    RUNNING = "running"
    CROWD = "crowd"
    LINE_CROSSING = "line_crossing"
    CAMERA_OFFLINE = "camera_offline"


class Direction(str, enum.Enum):
    """Which way a line was crossed. Walking along the line from its first point to its second,
    ``in`` is crossing it from the left-hand side to the right-hand side (as seen on screen)."""

    IN = "in"
    OUT = "out"


@dataclass(frozen=True, slots=True)
class KindInfo:
    """What the rest of the code needs to know about one event kind (read, never re-spelled).

    Attributes:
        zone_event: belongs to one zone (``Event.zone`` set; a line crossing's is the line).
        tracked: about one tracked object (``Event.track_id`` set); a crowd is about a zone.
        behaviour: started and ended by a behaviour decider from the track's history.
        evaluated: labelled by ``monitor synth`` and scored by ``monitor eval``.
        alert: makes a review an ``alert`` by default (``[reviews] alert_kinds``).
        colour: its colour in plots.
        summary: one line for help texts.
    """

    zone_event: bool
    tracked: bool
    behaviour: bool
    evaluated: bool
    alert: bool
    colour: str
    summary: str


# In the order tables and plots show them: behaviours first.
KIND_INFO: dict[EventKind, KindInfo] = {
    EventKind.FALL: KindInfo(False, True, True, True, True, "#d62728",
                             "the temporal model saw a fall and the person down"),
    EventKind.RUNNING: KindInfo(False, True, True, True, True, "#1f77b4",
                                "the temporal model saw running"),
    EventKind.LOITERING: KindInfo(True, True, False, True, True, "#2ca02c",
                                  "it stayed in a zone loitering_s"),
    EventKind.CROWD: KindInfo(True, False, False, True, True, "#9467bd",
                              "at least min_objects of a label in a zone for_s"),
    EventKind.LINE_CROSSING: KindInfo(True, True, False, True, False, "#8c564b",
                                      "its foot point crossed a line (a moment)"),
    EventKind.PRESENCE: KindInfo(False, True, False, False, False, "#7f7f7f",
                                 "a confirmed object of a watched label"),
    EventKind.INTRUSION: KindInfo(True, True, False, False, True, "#ff7f0e",
                                  "its foot point is inside a zone"),
    EventKind.CAMERA_OFFLINE: KindInfo(False, False, False, False, False, "#000000",
                                       "no frames from the camera for offline_event_s"),
}


def kinds_where(**flags: bool) -> tuple[str, ...]:
    """Kind names (in ``KIND_INFO`` order) whose ``KindInfo`` has these flag values,
    e.g. ``kinds_where(behaviour=True)`` -> ``("fall", "running")``."""
    return tuple(
        kind.value for kind, info in KIND_INFO.items()
        if all(getattr(info, name) == value for name, value in flags.items())
    )


class AlertType(str, enum.Enum):
    START = "start"
    UPDATE = "update"
    END = "end"


class EndReason(str, enum.Enum):
    """Why an event ended."""

    UNSEEN = "unseen"  # the object went unseen for end_after_s
    LEFT_ZONE = "left_zone"  # outside the event's zone for end_after_s
    BEHAVIOUR_OVER = "behaviour_over"  # the decider said the fall/running is over
    SHUTDOWN = "shutdown"  # the daemon stopped (SIGTERM)
    RESTART = "restart"  # found open at start-up: the daemon had died without ending it
    DISPERSED = "dispersed"  # a crowd: fewer than min_objects in the zone for end_after_s
    CROSSED = "crossed"  # a line crossing is a moment: it ends as it starts
    BACK_ONLINE = "back_online"  # a camera_offline event: frames came back


@dataclass(frozen=True, slots=True)
class Event:
    """One tracked object's life as an event of one kind (the row the store keeps).

    Attributes:
        id: UUID string, stable over the event's start/update/end.
        end_time: None while the event is open.
        score: best detector score seen so far.
        box: box at the best score, pixels.
        track_id: the tracked object; None for an event about a zone (``crowd``).
        zone: zone name for intrusion/loitering/crowd, the line's for a line crossing, None
            for presence and behaviours.
        snapshot: path of the JPEG with the box drawn, None until written.
        evidence: JSON-serialisable facts that explain the event (frames, dwell, scores...).
        operator_label: what an operator said it really was (``monitor label``), None if unsaid.
        seq: number of the event's newest alert: 1 for its start, one more for each update and
            the end; with ``id`` and the alert type it identifies an alert.
        seen_at: footage time of the newest sighting the event is based on.
        seen_score: detector score of that sighting (``score`` is the best so far).
        stationary: the object has not changed position for ``stationary_after_s``.
        zones: the zones the object has been in during the event, in the order entered.
        dwell_s: zone events: seconds from entering the zone to the last sighting inside it.
        end_reason: why it ended; None while open.
        announced: its alerts are published; False for the presence of an object that has not
            moved since it appeared, which is recorded (``stationary``) but never alerted.
        direction: a line crossing's direction; None for other kinds.
        clip: path of the event's MP4 clip; None until written. Only the store knows it (the
            clip thread records it there); the pipeline's events never carry it.
    """

    id: str
    camera: str
    kind: EventKind
    label: str
    track_id: int | None
    start_time: datetime
    end_time: datetime | None
    score: float
    box: Box
    zone: str | None = None
    snapshot: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    operator_label: str | None = None
    seq: int = 0
    seen_at: datetime | None = None
    seen_score: float | None = None
    stationary: bool = False
    zones: tuple[str, ...] = ()
    dwell_s: float | None = None
    end_reason: EndReason | None = None
    announced: bool = True
    direction: Direction | None = None
    clip: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """A change of one event that subscribers must hear about (if it is ``announced``): start,
    update or end.

    Attributes:
        record_only: store the event's newest state, publish nothing: the periodic refresh of an
            event whose updates are quiet (a stationary object), so the stored last sighting is
            never more than ``update_interval_s`` old (a restart ends the event there).
    """

    type: AlertType
    event: Event
    record_only: bool = False


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An MQTT message waiting in the durable outbox.

    Attributes:
        id: outbox sequence number (None before the store assigned one); publish order is id order.
        camera: the camera the alert belongs to (alerts flow in order per camera).
        topic: full MQTT topic.
        payload: JSON text.
    """

    id: int | None
    camera: str
    topic: str
    payload: str


@dataclass(frozen=True, slots=True)
class Observation:
    """One sighting of a track: what the temporal classifier will read as the track's history."""

    at: datetime
    monotonic: float
    frame_index: int
    box: Box
    score: float
    class_name: str
    zones: frozenset[str]


@dataclass(frozen=True, slots=True)
class TrackView:
    """What a decider reads of one live track: its id and observations, oldest first."""

    track_id: int
    history: tuple[Observation, ...]


@dataclass(frozen=True, slots=True)
class TrackSighting:
    """A track of a watched label seen in the newest frame, as the zone-level stages read it.

    Attributes:
        confirmed: its presence is confirmed (what it did before counts once it is).
        announced: its events are published (it has moved, or never-moved objects alert).
    """

    track_id: int
    label: str
    observation: Observation
    confirmed: bool
    announced: bool


@dataclass(frozen=True, slots=True)
class ZoneStay:
    """One announced object's current stay in one zone (its intrusion event is open).

    Attributes:
        entered: its first sighting inside during this stay.
        last_inside: its newest sighting inside.
    """

    track_id: int
    label: str
    zone: str
    entered: Observation
    last_inside: Observation


class Evidence(Protocol):
    """A typed part of an event's evidence (``monitor.events.evidence``) that writes its JSON."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Verdict:
    """A behaviour of one track started or ended.

    Attributes:
        track_id: the track.
        kind: ``fall`` or ``running``.
        started: True for a start, False for an end.
        at: the observation the change dates from (start: when the condition first held).
        evidence: why (``monitor.events.evidence.BehaviourEvidence``).
    """

    track_id: int
    kind: str
    started: bool
    at: Observation
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class CameraState:
    """What is in front of one camera now: the retained state subscribers read.

    Attributes:
        camera: camera name.
        counts: ``(zone, label) -> objects present``; zone None is the whole camera. Only
            announced objects count (one that never moved is not an alert, nor a count).
        motion: something moved within the motion ``off_delay_s``; None while unknown.
        crossings: ``(line, label, direction) -> crossings`` since the records began (not reset
            at start or stop).
    """

    camera: str
    counts: dict[tuple[str | None, str], int] = field(hash=False)
    motion: bool | None
    crossings: dict[tuple[str, str, Direction], int] = field(default_factory=dict, hash=False)


class Severity(str, enum.Enum):
    """How a review item asks for attention (as Frigate's review items)."""

    ALERT = "alert"  # an event of a configured kind (and zone): tell someone now
    DETECTION = "detection"  # something was there: worth a look later


class ReviewChange(str, enum.Enum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True, slots=True)
class Review:
    """One period of activity on one camera, grouping the announced events inside it.

    Attributes:
        id: UUID string.
        camera: camera name.
        start_time: its first event's start.
        end_time: its last event's end; None while open.
        severity: ``alert`` once any event of it is alert-worthy, else ``detection``.
        event_ids: its events, in the order they started.
        kinds, labels, zones: what its events were, each in first-seen order.
        seq: number of its newest message: 1 for ``new``, one more per update and the end.
    """

    id: str
    camera: str
    start_time: datetime
    end_time: datetime | None
    severity: Severity
    event_ids: tuple[str, ...]
    kinds: tuple[str, ...]
    labels: tuple[str, ...]
    zones: tuple[str, ...]
    seq: int = 1


@dataclass(frozen=True, slots=True)
class ReviewMessage:
    """A review opened, changed or ended; ``cause`` is the event that made it happen."""

    type: ReviewChange
    review: Review
    cause: str
