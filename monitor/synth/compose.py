"""Labelled clips with real people: the entry point of the generator.

Stages (one module each): ``video`` reads the footage, ``background`` takes the median empty
scene, ``crops`` cuts people out with the detector's boxes, ``assets`` caches those, ``motion``
and ``plan`` decide who moves where, ``render`` pastes them, ``annotate`` measures the truth.
This module runs them for every clip and writes the files.

Example:
    >>> paths = generate_clips(Path("vtest.avi"), Path("out"), seed=7, per_kind=4,
    ...                        detect=my_detector)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from monitor.events.zones import Zone
from monitor.synth.annotate import Annotation, annotate, occupancy, truth_line
from monitor.synth.assets import SceneAssets, load_or_build
from monitor.synth.crops import Detect
from monitor.synth.motion import Stage
from monitor.synth.plan import Cast, ClipSpec, plan_clip
from monitor.synth.render import NoiseBank, Placed, render_frame
from monitor.synth.settings import KINDS, SynthSettings
from monitor.synth.video import write_clip

__all__ = ["ClipSpec", "SynthSettings", "check_zone", "generate_clips", "make_cast", "plan_clips",
           "render_clip"]

ANNOTATIONS_FILE = "annotations.json"
CLIPS_FILE = "clips.json"
CACHE_FOLDER = ".synth-cache"
_PLAN_STREAM, _NOISE_STREAM = 0, 1  # independent random streams per clip, one per purpose


def make_cast(assets: SceneAssets, settings: SynthSettings) -> Cast:
    """The planning context: scene geometry, crops, and the zone in pixels.

    Raises:
        ValueError: the zone holds the foot point of a static object (see ``check_zone``).
    """
    check_zone(Zone("synth", settings.zone), assets)
    width, height = assets.frame_size
    stage = Stage(width, height, settings.fps, assets.perspective, settings.person_height_m,
                  assets.obstacles)
    zone_px = np.array([(x * width, y * height) for x, y in settings.zone], dtype=np.float32)
    return Cast(stage, assets.crops, zone_px)


def check_zone(zone: Zone, assets: SceneAssets) -> None:
    """Refuse a zone holding the foot point (bottom-centre) of a static object the detector
    sees in the empty scene: every clip would get a false loitering event from it.

    Raises:
        ValueError: naming the object and the zone.
    """
    width, height = assets.frame_size
    for box in assets.obstacles:
        foot = ((box.x1 + box.x2) / 2.0, box.y2)
        if zone.contains(*foot, width, height):
            raise ValueError(
                f"zone {list(zone.polygon)} holds the foot point ({foot[0]:.0f}, {foot[1]:.0f}) px "
                f"of a static object the detector sees in the empty scene (box {box.x1:.0f}, "
                f"{box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f}): it would loiter in every clip; "
                f"move the zone off it"
            )


def plan_clips(seed: int, per_kind: int, cast: Cast, settings: SynthSettings) -> list[ClipSpec]:
    """Plan ``per_kind`` clips of every kind; clip n of a kind depends only on (seed, kind, n)."""
    specs = []
    for kind_number, kind in enumerate(KINDS):
        for n in range(per_kind):
            rng = np.random.default_rng([seed, kind_number, n, _PLAN_STREAM])
            spec = plan_clip(rng, cast, settings, kind, f"{kind}_{seed}_{n}.avi")
            specs.append(dataclasses.replace(spec, number=n))
    return specs


def render_clip(
    spec: ClipSpec, cast: Cast, background: np.ndarray, rng: np.random.Generator,
    settings: SynthSettings,
) -> Iterator[np.ndarray]:
    """The clip's frames, BGR uint8 like the background, one at a time."""
    noise = None
    if settings.noise_sigma > 0:
        noise = NoiseBank.draw(rng, background.shape, settings.noise_sigma,
                               settings.noise_bank_frames, settings.noise_shift_px)
    for frame in range(spec.n_frames):
        people = [
            Placed(cast.crops[actor.crop_index], pose)
            for actor in spec.actors
            if (pose := actor.trajectory.pose(frame)) is not None
        ]
        yield render_frame(background, people,
                           None if noise is None else noise.sample(rng, background.shape))


def generate_clips(
    footage: Path,
    out_dir: Path,
    *,
    seed: int,
    per_kind: int,
    detect: Detect,
    settings: SynthSettings = SynthSettings(),
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Writes out_dir/<kind>_<seed>_<n>.avi for every kind of ``KINDS`` (fall, running, loitering,
    crowd, line_crossing, walk) — per_kind clips each — and out_dir/annotations.json; returns
    the clip paths.

    Also writes ``clips.json`` (fps, zone, seed, settings) and caches the background and the
    person crops in ``out_dir/.synth-cache``. Rows of ``annotations.json`` left by an earlier run
    for clips this run does not write are kept, so several seeds can share one folder.

    Args:
        footage: a fixed-camera video with people walking (vtest.avi).
        out_dir: created if missing.
        seed: non-negative; the same seed, footage and settings give the same clips.
        per_kind: clips of each kind.
        detect: person detector, BGR image -> [(x1, y1, x2, y2, score)].
        settings: every number the generator draws from.
        progress: called with one line per stage and per clip.

    Returns:
        The written clip paths, in generation order.

    Raises:
        ValueError: a negative seed or count, an out_dir whose clips.json has another fps
            or zone, or a zone holding the foot point of a static object of the scene.
        monitor.synth.video.FootageError, monitor.synth.crops.CropError,
        monitor.synth.plan.PlanError: unreadable footage, too few usable people, no valid path.
    """
    if seed < 0 or per_kind < 0:
        raise ValueError(f"seed and per_kind must be >= 0, got seed={seed}, per_kind={per_kind}")
    report = progress if progress is not None else _quiet
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_same_geometry(out_dir, settings)
    assets = load_or_build(footage, out_dir / CACHE_FOLDER, detect, settings, report)
    cast = make_cast(assets, settings)
    zone = Zone("synth", settings.zone)
    paths: list[Path] = []
    rows: list[Annotation] = []
    for spec in plan_clips(seed, per_kind, cast, settings):
        noise_rng = np.random.default_rng([seed, KINDS.index(spec.kind), spec.number, _NOISE_STREAM])
        path = out_dir / spec.name
        frames = render_clip(spec, cast, assets.background, noise_rng, settings)
        write_clip(path, frames, settings.fps)
        labels = annotate(spec, zone, assets.frame_size, settings)
        rows.extend(labels)
        people = occupancy(spec, zone, truth_line(settings), assets.frame_size,
                           settings.in_view_frac)
        path.with_suffix(".people.json").write_text(json.dumps(people) + "\n", encoding="utf-8")
        paths.append(path)
        events = ", ".join(f"{a.kind} {a.start:.1f}-{a.end:.1f} s" for a in labels) or "no event"
        report(f"{spec.name}: {spec.n_frames} frames, {len(spec.actors)} people, {events}")
    _write_annotations(out_dir, rows, {p.name for p in paths})
    clips = {"fps": settings.fps, "zone": [list(p) for p in settings.zone],
             "line": [list(p) for p in settings.line], "seed": seed,
             "settings": dataclasses.asdict(settings)}
    (out_dir / CLIPS_FILE).write_text(json.dumps(clips, indent=1) + "\n", encoding="utf-8")
    return paths


def _quiet(_: str) -> None:
    pass


def _check_same_geometry(out_dir: Path, settings: SynthSettings) -> None:
    """Refuse to mix clips of another frame rate, zone or line in one folder (one clips.json)."""
    existing = out_dir / CLIPS_FILE
    if not existing.is_file():
        return
    previous = json.loads(existing.read_text(encoding="utf-8"))
    zone = [list(p) for p in settings.zone]
    line = [list(p) for p in settings.line]
    if (previous.get("fps") != settings.fps or previous.get("zone") != zone
            or previous.get("line", line) != line):
        raise ValueError(
            f"{existing} describes fps {previous.get('fps')}, zone {previous.get('zone')} and "
            f"line {previous.get('line')}, this run fps {settings.fps}, zone {zone} and line "
            f"{line}: use another out_dir"
        )


def _write_annotations(out_dir: Path, rows: list[Annotation], written: set[str]) -> None:
    """Write this run's rows plus earlier rows of clips that still exist and were not rewritten."""
    path = out_dir / ANNOTATIONS_FILE
    kept: list[dict[str, str | float]] = []
    if path.is_file():
        kept = [
            row for row in json.loads(path.read_text(encoding="utf-8"))
            if row["clip"] not in written and (out_dir / row["clip"]).is_file()
        ]
    merged = kept + [row.as_json() for row in rows]
    path.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
