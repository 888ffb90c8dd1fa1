"""What makes an event: confirmation and zone dwell, review items, behaviour (fall, running)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.base import _Strict
from monitor.types import EventKind, kinds_where


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
