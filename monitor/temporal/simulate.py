"""A kinematic simulator of person tracks, for training the temporal classifier.

Each behaviour is a motion model in metres, projected into pixels with a per-track scale (how far
the person is from the camera) and a per-track viewpoint (the angle of the walking direction),
then degraded as a detector degrades it: box jitter, score noise and missed detections.

Behaviours: ``walk`` (0.8–2 m/s), ``run`` (2.4–6 m/s), ``stand`` (sway only), ``loiter`` (slow
random walk inside a zone), ``fall`` (walks, then within 0.4–1.0 s the box turns from upright
to lying, then stays still) and ``lie`` (something person-like lying still from its first frame:
vtest.avi's yellow object on the lawn, which the per-frame detector calls ``Fall``; it never
dropped, so it is no fall). Walkers, runners and the others cross a zone now and then, so being in
a zone alone does not mean loitering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.types import Observation
from monitor.types import Box

BEHAVIOURS: tuple[str, ...] = ("walk", "run", "stand", "loiter", "fall", "lie")
_PERSON_HEIGHT_M = 1.7
_PERSON_WIDTH_M = 0.55
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """Ranges the simulator draws from; defaults are a fixed camera like vtest.avi's.

    Attributes:
        width, height: frame size in pixels.
        fps: detection rate of the track.
        duration_s: track length.
        person_px: range of a standing person's height in pixels (distance to the camera).
        jitter: box noise as a fraction of the box size (standard deviation).
        miss_rate: range of the probability that a frame has no detection.
        fall_miss_rate: range of that probability while the body is going down.
        flicker_rate, flicker_size: real boxes jump in size now and then (a limb, a shadow, two
            people briefly merged): how often, and by what fraction of the height.
        post_fall_gap_s, post_fall_gap_share: a share of fallers is not detected at all for a
            while after landing (a lying body is harder to detect; seen on composed clips).
        passer_share: share of ``lie`` tracks whose id a passer-by's box takes for 1-3 frames.
        upright_width_m, lying_height_m, lying_width_m: ranges of box sizes in metres.
        walk_speed, run_speed: ranges in metres per second.
        zone_share: probability that a non-loitering track crosses a zone for a while.
    """

    width: int = 768
    height: int = 576
    fps: float = 5.0
    duration_s: float = 8.0
    person_px: tuple[float, float] = (60.0, 220.0)
    jitter: float = 0.04
    miss_rate: tuple[float, float] = (0.0, 0.15)
    fall_miss_rate: tuple[float, float] = (0.0, 0.9)
    flicker_rate: tuple[float, float] = (0.0, 0.3)
    flicker_size: tuple[float, float] = (0.1, 0.25)
    post_fall_gap_s: tuple[float, float] = (0.0, 3.5)
    post_fall_gap_share: float = 0.4
    passer_share: float = 0.4
    upright_width_m: tuple[float, float] = (0.6, 1.05)
    lying_height_m: tuple[float, float] = (0.45, 0.9)
    lying_width_m: tuple[float, float] = (1.2, 1.7)
    walk_speed: tuple[float, float] = (0.8, 2.0)
    run_speed: tuple[float, float] = (2.4, 6.0)
    zone_share: float = 0.3


@dataclass(frozen=True, slots=True)
class SimulatedTrack:
    behaviour: str
    observations: tuple[Observation, ...]
    event_start_s: float | None
    """For ``fall``: seconds from the track's start to the start of the fall."""
    event_mid_s: float | None = None
    """For ``fall``: when the body is half-way down (the moment a window must show to be a fall)."""


def _path(
    behaviour: str, t: np.ndarray, rng: np.random.Generator, s: SimulationSettings
) -> tuple[np.ndarray, ...]:
    """Ground position (m), and for each time the fraction of the fall done (0 upright, 1 lying)."""
    heading = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(heading), math.sin(heading) * 0.5])  # depth compresses y
    fallen = np.zeros_like(t)
    fall_start = None
    if behaviour in ("walk", "fall"):
        speed = rng.uniform(*s.walk_speed)
    elif behaviour == "run":
        speed = rng.uniform(*s.run_speed)
    else:
        speed = 0.0
    position = np.outer(t * speed, direction)
    if behaviour in ("stand", "lie"):
        position += rng.normal(0, 0.03, size=position.shape)
        if behaviour == "lie":
            fallen = np.ones_like(t)
    elif behaviour == "loiter":
        steps = rng.normal(0, 0.12, size=position.shape)
        position = np.cumsum(steps, axis=0)
        position -= position.mean(axis=0)  # wanders about a spot
    elif behaviour == "fall":
        fall_start = rng.uniform(0.25, 0.55) * t[-1]
        fall_time = rng.uniform(0.4, 1.0)
        fallen = np.clip((t - fall_start) / fall_time, 0.0, 1.0)
        stop = np.searchsorted(t, fall_start)
        position[stop:] = position[stop - 1] if stop > 0 else position[0]
        position[stop:] += np.outer(fallen[stop:], direction) * 0.8  # the body lands forwards
    if fall_start is None:
        return position, fallen, np.array([np.nan, np.nan])
    return position, fallen, np.array([fall_start, fall_start + fall_time / 2])


_MIN_VISIBLE = 10


def _in_view(foot: np.ndarray, px_per_m: float, s: SimulationSettings) -> np.ndarray:
    """Whether an upright person's whole box is inside the frame at each step."""
    half_w = _PERSON_WIDTH_M * px_per_m  # generous: a lying body is wider
    top = foot[:, 1] - _PERSON_HEIGHT_M * px_per_m
    return (
        (foot[:, 0] - half_w >= 0) & (foot[:, 0] + half_w <= s.width)
        & (top >= 0) & (foot[:, 1] <= s.height)
    )


def simulate_track(
    behaviour: str, rng: np.random.Generator, settings: SimulationSettings | None = None
) -> SimulatedTrack:
    """One simulated track of ``behaviour``, reproducible from ``rng``'s state."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour '{behaviour}'; known: {', '.join(BEHAVIOURS)}")
    s = settings or SimulationSettings()
    t = np.arange(0.0, s.duration_s, 1.0 / s.fps)
    position, fallen, fall_start = _path(behaviour, t, rng, s)
    px_per_m = rng.uniform(*s.person_px) / _PERSON_HEIGHT_M
    # A fast runner close to the camera crosses the frame in a second; like a real one, the
    # track then only exists while the person is in view. Keep at least _MIN_VISIBLE frames by
    # moving the person further away when needed.
    while True:
        centre = np.array([rng.uniform(0.3, 0.7) * s.width, rng.uniform(0.5, 0.85) * s.height])
        foot = centre + (position - position.mean(axis=0)) * px_per_m
        visible = _in_view(foot, px_per_m, s)
        if visible.sum() >= _MIN_VISIBLE or px_per_m < 5:
            break
        px_per_m /= 2
    # Upright: 1.7 m tall, 0.55 m wide. Lying: the body's length lies along the ground.
    # A detector's box is wider than the body (arms, stride) and a lying body's box depends on
    # the pose and the viewing angle: draw both per track, as measured on vtest.avi people
    # (upright height/width about 1.6-2.6) and on lying people (0.3-0.7).
    upright_w = rng.uniform(*s.upright_width_m)
    lying_h = rng.uniform(*s.lying_height_m)
    lying_w = rng.uniform(*s.lying_width_m)
    height_px = px_per_m * (_PERSON_HEIGHT_M * (1 - fallen) + lying_h * fallen)
    width_px = px_per_m * (upright_w * (1 - fallen) + lying_w * fallen)
    miss_rate = rng.uniform(*s.miss_rate)
    # The detector often loses a person in mid-fall (neither upright nor lying).
    fall_miss_rate = rng.uniform(*s.fall_miss_rate)
    flicker_rate = rng.uniform(*s.flicker_rate)
    gap_s = rng.uniform(*s.post_fall_gap_s) if rng.random() < s.post_fall_gap_share else 0.0
    landed = t[np.argmax(fallen >= 0.95)] if behaviour == "fall" else np.inf
    in_zone = np.full(len(t), behaviour == "loiter")
    if behaviour != "loiter" and rng.random() < s.zone_share:
        first_in, last_in = sorted(rng.integers(0, len(t), size=2))
        in_zone[first_in : last_in + 1] = True
    # Something lying still is sometimes passed by a walker whose box the tracker briefly gives
    # its id: a few tall boxes beside it, then the lying box again. That is no fall.
    swapped = np.zeros(len(t), dtype=bool)
    if behaviour == "lie" and rng.random() < s.passer_share:
        start = int(rng.integers(0, len(t)))
        swapped[start : start + int(rng.integers(1, 4))] = True
        passer_dx = rng.uniform(-0.6, 0.6) * width_px[0]
    observations = []
    first = int(np.argmax(visible))
    for i, moment in enumerate(t):
        falling = 0.05 < fallen[i] < 0.95
        if not visible[i] or (i > first and rng.random() < miss_rate):
            continue
        if behaviour == "fall" and landed <= moment < landed + gap_s:
            continue
        if behaviour == "fall" and falling and rng.random() < fall_miss_rate:
            continue
        w = width_px[i] * (1 + rng.normal(0, s.jitter))
        h = height_px[i] * (1 + rng.normal(0, s.jitter))
        if swapped[i]:
            w, h = px_per_m * upright_w, px_per_m * _PERSON_HEIGHT_M
        if rng.random() < flicker_rate:
            h *= 1 + rng.choice([-1.0, 1.0]) * rng.uniform(*s.flicker_size)
        cx = foot[i, 0] + rng.normal(0, s.jitter) * w + (passer_dx if swapped[i] else 0.0)
        bottom = foot[i, 1] + rng.normal(0, s.jitter) * h * 0.5
        box = Box(
            float(np.clip(cx - w / 2, 0, s.width - 1)),
            float(np.clip(bottom - h, 0, s.height - 1)),
            float(np.clip(cx + w / 2, 1, s.width)),
            float(np.clip(bottom, 1, s.height)),
        )
        lying = fallen[i] > 0.5 and not swapped[i]
        # The per-frame detector calls lying people "Fall" most of the time, and upright people
        # "Fall" now and then: the noise a sequence model has to see through.
        class_name = "Fall" if rng.random() < (0.8 if lying else 0.05) else "Normal"
        observations.append(
            Observation(
                at=_EPOCH + timedelta(seconds=float(moment)),
                monotonic=float(moment),
                frame_index=i,
                box=box,
                score=float(np.clip(rng.normal(0.72, 0.1), 0.3, 0.99)),
                class_name=class_name,
                zones=frozenset({"zone"}) if in_zone[i] else frozenset(),
            )
        )
    if math.isnan(fall_start[0]):
        return SimulatedTrack(behaviour, tuple(observations), None)
    return SimulatedTrack(
        behaviour, tuple(observations), float(fall_start[0]), float(fall_start[1])
    )
