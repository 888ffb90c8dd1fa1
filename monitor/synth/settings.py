"""Every number the clip generator draws from, in one frozen value.

Speeds are in metres per second and turned into pixels with the perspective of the footage:
a standing person is ``person_height_m`` tall, so at any image row one metre is the local person
height in pixels divided by that. Ranges are ``(min, max)`` and drawn uniformly per person.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.synth.crops import CropSettings
from monitor.types import kinds_where

WALK = "walk"  # a clip kind with no event: people walking by

KINDS: tuple[str, ...] = (*kinds_where(evaluated=True), WALK)
"""Clip kinds, in the order they are generated; ``walk`` clips hold no event."""


def _range(name: str, value: tuple[float, float], low: float = 0.0) -> None:
    if not low <= value[0] <= value[1]:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max, got {value!r}")


@dataclass(frozen=True, slots=True)
class SynthSettings:
    """How clips are composed (see the module docstring for units).

    Attributes:
        fps: frame rate of the written clips; motion is planned per frame at this rate.
        zone: normalised polygon (x, y in 0..1) where loiterers stay; written to clips.json.
            It must not hold the foot point of a static object the detector sees in the empty
            scene (generation refuses it): that object would loiter in every clip. The default
            is vtest's lower right, clear of the yellow object on the lower-left lawn.
        zone_pass_s: everyone but the loiterer and crowd has their feet in the zone at most
            this long (crossing it is fine; it must stay below ``loitering_s``).
        walkers: (min, max) distractor walkers per clip (a ``walk`` clip has one more, the
            person it is about).
        walker_visible_frac: a walker is in the clip for at least this fraction of their
            crossing (or the whole clip): on their way at the start, or arriving at the end.
        clip_s: clip length; loitering clips grow to fit the loiterer's stay plus margins.
        loiter_s: how long a loiterer stays in the zone.
        loiter_tail_s: a loitering clip runs this long after the loiterer left the zone.
        loiter_approach_m: a loiterer is seen walking at least this far before entering the
            zone (when the drawn entry allows it), so the stay has a visible beginning.
        person_height_m: real height of a standing person, the pixel-to-metre scale.
        walk_speed_mps: walkers, fallers before the fall, loiterers outside the zone.
        run_speed_mps: runners; capped so a tracker can follow them (``max_step_box_frac``).
        loiter_speed_mps: loiterers inside the zone.
        loiter_pause_s: loiterers stand still this long at each spot they walk to.
        max_step_box_frac: a person moves at most this fraction of their box width per frame
            (IoU-matching trackers lose faster targets at 10 fps).
        fall_s: how long the body takes to go from upright to lying.
        fall_angle_deg: final rotation of a fallen person, either direction.
        fall_at_s: when the faller starts to go down, from the clip's first frame.
        fall_upright_s: the faller is in view (``in_view_frac``), upright and walking, at least
            this long right before going down; ``fall_at_s`` may not start earlier.
        fall_x: (min, max) normalised column of the faller's foot when going down: a body
            lying near a side of the frame is cut off by it.
        fall_ground_y: (min, max) normalised foot row of the fall. Near rows only, where the
            detector still sees a lying person: on vtest 0.70 is a person about 120 px tall,
            0.45 only about 80 px.
        run_start_s: earliest start of the run; the latest is set by the clip's end.
        run_in_view_s: a runner is in view (``in_view_frac``) at least this long; the speed is
            capped so that the crossing lasts that long.
        run_ground_y: (min, max) normalised foot row of runners, start to end. Near rows only:
            a far, small runner is blurred by the motion and barely detected (on vtest 0.65 is
            a person about 110 px tall).
        lying_thickness: scale across the body of a lying person (1 keeps the crop's width).
        lying_jitter_px, lying_jitter_deg: standard deviation of the tiny per-frame movement of
            a lying person (breathing, compression noise of a real camera).
        walk_bob_frac, run_bob_frac: vertical bounce of the gait, fraction of the height.
        walk_step_hz, run_step_hz: steps per second (one bounce per step).
        ground_y: (min, max) normalised foot row where people can walk (path and lawn).
        max_drift_y: a crossing path rises or falls at most this much (normalised) end to end.
        in_view_frac: a runner is in view (and their running labelled) while at least this
            fraction of their box is inside the frame.
        zone_margin_px: loiterers' waypoints keep this far inside the zone's edges, so the
            gait bounce never takes the foot point out.
        edge_margin_px: a falling and lying person's whole box stays this far inside the frame.
        separation_px: gap every two people's boxes keep in every frame.
        obstacle_gap_px: gap the labelled person keeps from static objects the detector sees
            in the background (the yellow object on vtest's lawn).
        crop_choices: a person's crop is drawn from the this many crops closest in size.
        plan_tries: attempts to draw a path that respects the gaps before giving up on it.
        noise_sigma: standard deviation of the per-pixel sensor noise, grey levels.
        noise_bank_frames, noise_shift_px: noise frames drawn per clip, and the range of the
            random offset at which each frame samples one (see ``render.NoiseBank``).
        loitering_s: the events' loitering time written to eval.toml; every person whose feet
            stay in the zone this long is labelled loitering (crowd members too).
        line: the counted line, two normalised points (written to eval.toml); every crossing
            of anyone's foot point is labelled ``line_crossing``. The default runs down the
            middle of vtest's near walkway, which people cross walking left or right; it stops
            short of the far rows (above 0.45), where people are under about 80 px tall and the
            default detector misses many of them.
        line_hysteresis: as ``[[cameras.lines]] hysteresis``: the truth counts what the daemon
            is configured to count.
        crossers: (min, max) people crossing the whole frame in a ``line_crossing`` clip.
        crowd_size: people standing in the zone together in a ``crowd`` clip, and the crowd's
            ``min_objects`` in eval.toml.
        crowd_for_s: the crowd's ``for_s`` in eval.toml; a shorter crowd is not labelled.
        crowd_stay_s: how long the last of them to arrive (the first to leave) stays.
        crowd_gap_s: time between two arrivals, and between two departures.
        crowd_ground_y: (min, max) normalised foot row of the crowd's spots (within the zone).
            Near rows only: a far person walking in is barely detected, and a track that starts
            once they stand still is an object that never moved (no alert, no count).
        background_frames: frames, spread over the footage, in the median background.
        crops: how person crops are cut out of the footage.
    """

    fps: float = 10.0
    zone: tuple[tuple[float, float], ...] = ((0.55, 0.55), (0.95, 0.55), (0.95, 0.98), (0.55, 0.98))
    zone_pass_s: float = 4.0
    walkers: tuple[int, int] = (1, 2)
    walker_visible_frac: float = 0.7
    clip_s: float = 20.0
    loiter_s: tuple[float, float] = (14.0, 20.0)
    loiter_tail_s: float = 2.0
    loiter_approach_m: float = 2.5
    person_height_m: float = 1.7
    walk_speed_mps: tuple[float, float] = (1.0, 1.7)
    run_speed_mps: tuple[float, float] = (2.5, 4.5)
    loiter_speed_mps: tuple[float, float] = (0.2, 0.5)
    loiter_pause_s: tuple[float, float] = (0.0, 3.0)
    max_step_box_frac: float = 0.6
    fall_s: tuple[float, float] = (0.4, 1.0)
    fall_angle_deg: tuple[float, float] = (80.0, 95.0)
    fall_at_s: tuple[float, float] = (3.0, 10.0)
    fall_upright_s: float = 3.0
    fall_x: tuple[float, float] = (0.2, 0.8)
    fall_ground_y: tuple[float, float] = (0.70, 0.90)
    run_start_s: float = 1.0
    run_in_view_s: float = 2.5
    run_ground_y: tuple[float, float] = (0.65, 0.95)
    lying_thickness: float = 1.0
    lying_jitter_px: float = 0.3
    lying_jitter_deg: float = 0.3
    walk_bob_frac: float = 0.012
    run_bob_frac: float = 0.03
    walk_step_hz: float = 1.8
    run_step_hz: float = 2.8
    ground_y: tuple[float, float] = (0.34, 0.97)
    max_drift_y: float = 0.12
    in_view_frac: float = 0.8
    zone_margin_px: float = 8.0
    edge_margin_px: float = 16.0
    separation_px: float = 12.0
    obstacle_gap_px: float = 10.0
    crop_choices: int = 6
    plan_tries: int = 60
    noise_sigma: float = 2.0
    noise_bank_frames: int = 4
    noise_shift_px: int = 32
    loitering_s: float = 8.0
    line: tuple[tuple[float, float], tuple[float, float]] = ((0.5, 0.45), (0.5, 1.0))
    line_hysteresis: float = 0.02
    crossers: tuple[int, int] = (2, 3)
    crowd_size: int = 3
    crowd_for_s: float = 2.0
    crowd_stay_s: tuple[float, float] = (11.0, 14.0)
    crowd_gap_s: tuple[float, float] = (1.0, 2.5)
    crowd_ground_y: tuple[float, float] = (0.68, 1.0)
    background_frames: int = 81
    crops: CropSettings = field(default_factory=CropSettings)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.clip_s * self.fps < 2:
            raise ValueError(f"clip_s must give at least 2 frames at {self.fps} fps, got {self.clip_s}")
        if len(self.zone) < 3 or not all(0 <= x <= 1 and 0 <= y <= 1 for x, y in self.zone):
            raise ValueError(f"zone must be >= 3 corners normalised to 0..1, got {self.zone!r}")
        if not 0 <= self.walkers[0] <= self.walkers[1]:
            raise ValueError(f"walkers must be (min, max) with 0 <= min <= max, got {self.walkers!r}")
        for name in ("loiter_s", "walk_speed_mps", "run_speed_mps", "loiter_speed_mps",
                     "loiter_pause_s", "fall_s", "fall_angle_deg", "fall_at_s"):
            _range(name, getattr(self, name))
        for name in ("ground_y", "fall_x", "fall_ground_y", "run_ground_y", "crowd_ground_y"):
            _range(name, getattr(self, name))
            if getattr(self, name)[1] > 1:
                raise ValueError(f"{name} must be within 0..1, got {getattr(self, name)!r}")
        if not 0 <= self.fall_upright_s <= self.fall_at_s[0]:
            raise ValueError(f"fall_upright_s must be in 0..fall_at_s[0] ({self.fall_at_s[0]}), "
                             f"got {self.fall_upright_s}")
        if not 0 < self.run_in_view_s < self.clip_s:
            raise ValueError(f"run_in_view_s must be in (0, clip_s={self.clip_s}), "
                             f"got {self.run_in_view_s}")
        if self.crowd_size < 2 or not 1 <= self.crossers[0] <= self.crossers[1]:
            raise ValueError(f"crowd_size must be >= 2 and crossers (min, max) with 1 <= min <= "
                             f"max, got {self.crowd_size} and {self.crossers!r}")
        for name in ("crowd_stay_s", "crowd_gap_s"):
            _range(name, getattr(self, name))
        if self.crowd_stay_s[0] <= self.crowd_for_s or self.crowd_stay_s[0] <= self.loitering_s:
            raise ValueError("crowd_stay_s must exceed crowd_for_s and loitering_s: a crowd "
                             "clip's people are a crowd and loiter")
        if self.line[0] == self.line[1] or not all(0 <= v <= 1 for p in self.line for v in p):
            raise ValueError(f"line must be two distinct points normalised to 0..1, got {self.line!r}")
        if self.zone_pass_s < 0:
            raise ValueError(f"zone_pass_s must be >= 0, got {self.zone_pass_s}")
        if self.walk_speed_mps[0] <= 0 or self.run_speed_mps[0] <= 0 or self.loiter_speed_mps[0] <= 0:
            raise ValueError("walk, run and loiter speeds must be > 0")
        if not 0 < self.walker_visible_frac <= 1:
            raise ValueError(f"walker_visible_frac must be in (0, 1], got {self.walker_visible_frac}")
        if not 0 < self.max_step_box_frac <= 2:
            raise ValueError(f"max_step_box_frac must be in (0, 2], got {self.max_step_box_frac}")
        if min(self.crop_choices, self.plan_tries, self.background_frames,
               self.noise_bank_frames) < 1:
            raise ValueError("crop_choices, plan_tries, background_frames and noise_bank_frames "
                             "must be >= 1")
