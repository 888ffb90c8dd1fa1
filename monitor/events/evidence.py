"""What an event's evidence holds, as typed values, and their JSON (the one place it is spelled).

``Event.evidence`` is stored as JSON. Its typed parts are built here and read back through
``from_json``, so the writers (the lifecycle, the behaviour deciders) and the readers (training
from labelled events, ``monitor events show``) cannot drift apart:

* ``TrackRecord``: the track's kept observations (``evidence["track"]``), what
  ``monitor train --from-db`` learns from;
* ``StayEvidence``: entry and dwell of a zone event (top-level ``entered_at``, ``dwell_s``, and
  ``loitering_s`` for loitering);
* ``BehaviourEvidence``: why a fall or running started, and what ended it
  (``evidence["behaviour"]``).

``from_json`` raises ``EvidenceError`` (one line) on data that is not what ``to_json`` writes:
rows written by older versions are read with care by the callers, never trusted blindly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import iso_utc
from monitor.types import Box, Observation


class EvidenceError(ValueError):
    """Stored evidence is not in the form this version writes; ``str()`` names the field."""


def _get(data: Mapping[str, Any], key: str, what: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise EvidenceError(f"{what}: missing {key!r}")
    return data[key]


def _time(value: Any, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise EvidenceError(f"{what}: {value!r} is not an ISO time") from None
    if moment.tzinfo is None:
        raise EvidenceError(f"{what}: {value!r} has no time zone")
    return moment


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """A track's kept observations and the frame they were seen in.

    Observation times are kept relative to the first (``monotonic`` 0 there) and rebuilt from
    ``first_at``; zones are kept per observation.
    """

    frame_size: tuple[int, int]
    observations: tuple[Observation, ...]

    def to_json(self) -> dict[str, Any]:
        history = self.observations
        origin = history[0].monotonic
        return {
            "frame_size": list(self.frame_size),
            "first_at": iso_utc(history[0].at),
            "t": [round(o.monotonic - origin, 3) for o in history],
            "frame": [o.frame_index for o in history],
            "box": [o.box.as_list() for o in history],
            "score": [round(o.score, 3) for o in history],
            "class": [o.class_name for o in history],
            "in_zone": [sorted(o.zones) for o in history],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrackRecord:
        what = "track record"
        width, height = (int(v) for v in _get(data, "frame_size", what))
        first_at = _time(_get(data, "first_at", what), what)
        columns = [_get(data, key, what) for key in ("t", "frame", "box", "score", "class",
                                                      "in_zone")]
        if len({len(c) for c in columns}) != 1 or not columns[0]:
            raise EvidenceError(f"{what}: its columns are empty or of different lengths")
        observations = tuple(
            Observation(
                at=first_at + timedelta(seconds=float(t)),
                monotonic=float(t),
                frame_index=int(frame),
                box=Box(*(float(v) for v in box)),
                score=float(score),
                class_name=str(class_name),
                zones=frozenset(str(z) for z in zones),
            )
            for t, frame, box, score, class_name, zones in zip(*columns, strict=True)
        )
        return cls((width, height), observations)


@dataclass(frozen=True, slots=True)
class StayEvidence:
    """A zone event's stay: when the object entered, how long it has been inside (to its last
    sighting there), and the loitering time it was held to (loitering only)."""

    entered_at: datetime
    dwell_s: float
    loitering_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"entered_at": iso_utc(self.entered_at), "dwell_s": self.dwell_s}
        if self.loitering_s is not None:
            data["loitering_s"] = self.loitering_s
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StayEvidence:
        what = "zone stay"
        loitering = data.get("loitering_s") if isinstance(data, Mapping) else None
        return cls(_time(_get(data, "entered_at", what), what),
                   float(_get(data, "dwell_s", what)),
                   None if loitering is None else float(loitering))


@dataclass(frozen=True, slots=True)
class Trigger:
    """The stretch of the track a behaviour verdict dates from."""

    start: datetime
    end: datetime
    frames: tuple[int, ...]
    probability: float

    def to_json(self) -> dict[str, Any]:
        return {"from": iso_utc(self.start), "to": iso_utc(self.end), "frames": list(self.frames),
                "probability": round(self.probability, 3)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trigger:
        what = "trigger"
        return cls(_time(_get(data, "from", what), what), _time(_get(data, "to", what), what),
                   tuple(int(f) for f in _get(data, "frames", what)),
                   float(_get(data, "probability", what)))


@dataclass(frozen=True, slots=True)
class BehaviourEvidence:
    """Why a behaviour decider started (or ended) a fall or running.

    Attributes:
        decider: ``temporal``, ``rules`` or ``per_frame``.
        scorer: what the decider is: the model's name, SHA-256, architecture and window, or the
            rules' thresholds.
        rules: the rule values of the track then (speed in body heights/s, aspect...).
        probabilities: the last model steps: (time, label -> probability).
        trigger: what the verdict dates from.
        decision: the hysteresis it passed (``enter_prob``, ``exit_prob``, ``min_duration_s``).
        ended_by: the evidence of the verdict that ended it, once it ended.
    """

    decider: str
    scorer: Mapping[str, Any]
    rules: Mapping[str, float]
    probabilities: tuple[tuple[datetime, Mapping[str, float]], ...]
    trigger: Trigger
    decision: Mapping[str, float]
    ended_by: BehaviourEvidence | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "decider": self.decider,
            # Not under the decider's name: for "rules" that was the key of the rule values
            # too, and the thresholds were lost.
            "scorer": dict(self.scorer),
            "rules": dict(self.rules),
            "probabilities": [
                {"at": iso_utc(at), **{k: round(v, 3) for k, v in step.items()}}
                for at, step in self.probabilities
            ],
            "trigger": self.trigger.to_json(),
            "decision": dict(self.decision),
        }
        if self.ended_by is not None:
            data["ended_by"] = self.ended_by.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BehaviourEvidence:
        what = "behaviour evidence"
        decider = str(_get(data, "decider", what))
        steps: Sequence[Mapping[str, Any]] = _get(data, "probabilities", what)
        ended = data.get("ended_by")
        return cls(
            decider=decider,
            scorer=dict(data.get("scorer") or data.get(decider) or {}),  # older rows: by name
            rules={str(k): float(v) for k, v in (_get(data, "rules", what) or {}).items()},
            probabilities=tuple(
                (_time(_get(step, "at", what), what),
                 {str(k): float(v) for k, v in step.items() if k != "at"})
                for step in steps
            ),
            trigger=Trigger.from_json(_get(data, "trigger", what)),
            decision={str(k): float(v) for k, v in (data.get("decision") or {}).items()},
            ended_by=None if ended is None else cls.from_json(ended),
        )
