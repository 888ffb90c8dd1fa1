"""The benchmark's quiet scene: a real empty background, sensor noise, and now and then one walker.

Most of what a security camera films is nothing: the empty scene, a little sensor noise, a
lighting flicker, and every so often someone walking through. The busy real footage (vtest.avi,
people all the time) misses that case, so this module composes it from the same footage with
``monitor.synth``: the median background, and real people cut out of the footage and walked
across it one at a time.

People are found by differencing the footage against the background, not by the detector: the
footage a benchmark runs on must not change with the model the benchmark measures, and needs no
model to make. Only blobs the size and shape of one standing person (by the perspective fitted
over all blobs) are cut, so pairs walking together are left out.

Example:
    >>> scene = quiet_scene(Path("vtest.avi"), Path("cache"),
    ...                     QuietSceneSettings())  # doctest: +SKIP
    >>> scene.person_fraction  # doctest: +SKIP
    0.22
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from monitor.synth.assets import SceneAssets
from monitor.synth.background import median_background
from monitor.synth.compose import make_cast, render_clip
from monitor.synth.crops import (
    CropSettings, Detect, Perspective, fit_perspective, foreground_mask, harvest_crops,
)
from monitor.synth.motion import Segment, Trajectory, assemble
from monitor.synth.plan import Actor, Cast, ClipPlanner, ClipSpec, trajectory_boxes
from monitor.synth.settings import SynthSettings
from monitor.synth.video import FootageError, count_frames, read_frames, spread_indices, write_clip
from monitor.types import Box

__all__ = ["QuietScene", "QuietSceneSettings", "make_quiet_scene", "quiet_scene"]

FOOTAGE_VERSION = 1  # part of the cache name: bump when the same settings would give other frames
MIN_BLOB_PX = 150  # smaller foreground blobs are specks (a bag swinging, JPEG blocks), not people
ONE_PERSON_HEIGHT_TOL = 0.15  # a blob taller or shorter than the perspective by more is not one
ONE_PERSON_MAX_ASPECT = 0.6  # two people side by side make a blob wider than this x its height
# Normalised foot rows walkers cross at: vtest's near lawn. The default detector scores the
# people of vtest's far path at a median of 0.48, below the events' confirm_min_score (0.5); here
# it scores most walkers 0.55-0.7, so each walker is one track and one event: a known load.
WALK_GROUND_Y = (0.7, 0.97)
GAP_SPREAD = 0.5  # gaps: walker_every_s * (1 +- this); irregular, yet bounded for short scenes
_PLAN_STREAM, _NOISE_STREAM, _FLICKER_STREAM = 0, 1, 2  # one random stream per purpose


@dataclass(frozen=True, slots=True)
class QuietSceneSettings:
    """What the quiet scene looks like.

    Attributes:
        seconds: length of the scene. A minute holds a few walkers and lets the benchmark's
            rates settle, yet is made in well under a minute (about 40 MB of MJPG at 768x576).
        walker_every_s: mean empty time between one person leaving and the next one coming
            (plus the second or so they walk beyond the frame's edge), drawn uniformly within
            +-50 %. A camera on a quiet path sees someone now and then; with crossings of 6-12 s,
            about a fifth of the frames show a person (23 % over 50 seeds, 12-35 %).
        noise_sigma: standard deviation of the per-pixel Gaussian sensor noise, grey levels: a
            cheap daylight camera after its own denoising. No two frames are alike (a motion
            gate has to cope with that), yet it is far below a person's contrast to the scene.
            Each frame adds a fresh random window of a small bank of noise (synth's
            ``NoiseBank``): drawing all of it anew would cost 20 ms a frame.
        flicker_levels: per-frame global brightness offset, a whole number of grey levels drawn
            uniformly from -this..+this: mains-powered light and auto-exposure hunting, sampled
            at a few frames per second, move the whole picture up and down a level or so. Whole
            levels because a fraction of one would round away on 8-bit pixels.
        seed: the same seed, settings and source give the same frames.
    """

    seconds: float = 60.0
    walker_every_s: float = 20.0
    noise_sigma: float = 2.5
    flicker_levels: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if not self.walker_every_s > 0:
            raise ValueError(f"walker_every_s must be > 0, got {self.walker_every_s}")
        if not (self.noise_sigma >= 0 and self.flicker_levels >= 0):
            raise ValueError(f"noise_sigma and flicker_levels must be >= 0, got "
                             f"{self.noise_sigma} and {self.flicker_levels}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


@dataclass(frozen=True, slots=True)
class QuietScene:
    """A written quiet scene.

    Attributes:
        path: the .avi file (MJPG), the source's size and frame rate.
        frames: frames in the file.
        fps: frame rate.
        person_ranges: frame ranges in which some part of a person is drawn inside the picture,
            in order, disjoint; every other frame is the empty background plus noise.
    """

    path: Path
    frames: int
    fps: float
    person_ranges: tuple[range, ...]

    @property
    def person_frames(self) -> int:
        """Frames showing (part of) a person."""
        return sum(len(r) for r in self.person_ranges)

    @property
    def person_fraction(self) -> float:
        """Fraction of the frames showing (part of) a person, 0..1."""
        return self.person_frames / self.frames if self.frames else 0.0


def quiet_scene(
    source_video: Path, cache_dir: Path, settings: QuietSceneSettings,
    progress: Callable[[int, int], None] | None = None,
) -> QuietScene:
    """The quiet scene for ``settings``, made once and then read from ``cache_dir``.

    The file is named after the settings and the source file's size and modification time, so
    changed footage or settings make a new scene and an unchanged one is never made twice.

    Args:
        source_video: fixed-camera footage with people walking (vtest.avi).
        cache_dir: where scenes are kept; created if missing.
        settings: the scene.
        progress: called with (frames written, frames in all) while a scene is made.

    Returns:
        The scene; on a cache hit the file is not touched.

    Raises:
        monitor.synth.video.FootageError: the source cannot be read.
        monitor.synth.crops.CropError: the source yields too few people to cut out.
    """
    try:
        stat = source_video.stat()
    except OSError as error:
        reason = "no such file" if isinstance(error, FileNotFoundError) else error.strerror
        raise FootageError(f"footage {source_video}: {reason}") from None
    identity = {"version": FOOTAGE_VERSION, "settings": dataclasses.asdict(settings),
                "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    cache_dir.mkdir(parents=True, exist_ok=True)
    video = cache_dir / f"quiet-{settings.seconds:g}s-seed{settings.seed}-{key}.avi"
    index = video.with_suffix(".json")
    cached = _read_index(index, video)
    if cached is not None:
        return cached
    scene = make_quiet_scene(source_video, video, settings, progress)
    rows = {"frames": scene.frames, "fps": scene.fps,
            "person_ranges": [[r.start, r.stop] for r in scene.person_ranges], **identity}
    partial = index.with_suffix(".partial")
    partial.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    partial.replace(index)  # the index is written last and whole: it marks a complete video
    return scene


def _read_index(index: Path, video: Path) -> QuietScene | None:
    """The scene an index file describes, or None when either file is missing or unreadable."""
    if not (index.is_file() and video.is_file()):
        return None
    try:
        rows = json.loads(index.read_text(encoding="utf-8"))
        ranges = tuple(range(int(start), int(stop)) for start, stop in rows["person_ranges"])
        return QuietScene(video, int(rows["frames"]), float(rows["fps"]), ranges)
    except (ValueError, KeyError, TypeError):
        return None  # made again and overwritten


def make_quiet_scene(
    source_video: Path, out: Path, settings: QuietSceneSettings,
    progress: Callable[[int, int], None] | None = None,
) -> QuietScene:
    """Write a quiet scene made from ``source_video`` to ``out``.

    Args:
        source_video: fixed-camera footage with people walking (vtest.avi).
        out: the .avi to write (replaced whole at the end; its folder is created).
        settings: the scene.
        progress: called with (frames written, frames in all) after every frame.

    Returns:
        The scene: ``round(settings.seconds * fps)`` frames of the source's size and fps.

    Raises:
        ValueError: ``out`` is not an .avi file, or the scene would have no frame.
        monitor.synth.video.FootageError: the source cannot be read, or ``out`` written.
        monitor.synth.crops.CropError: the source yields too few people to cut out.
    """
    if out.suffix.lower() != ".avi":
        raise ValueError(f"out must be an .avi file (MJPG), got {out}")
    fps = _source_fps(source_video)
    n_frames = round(settings.seconds * fps)
    if n_frames < 1:
        raise ValueError(f"seconds={settings.seconds} at {fps} fps gives no frame")
    assets = _scene_assets(source_video)
    synth = dataclasses.replace(SynthSettings(), fps=fps, noise_sigma=settings.noise_sigma,
                                ground_y=WALK_GROUND_Y,
                                walker_visible_frac=1.0)  # see _plan_walkers
    cast = make_cast(assets, synth)
    walkers = _plan_walkers(cast, synth, settings, n_frames)
    spec = ClipSpec(out.name, "walk", n_frames, fps, walkers)
    frames = render_clip(spec, cast, assets.background,
                         np.random.default_rng([settings.seed, _NOISE_STREAM]), synth)
    flicker = np.random.default_rng([settings.seed, _FLICKER_STREAM])
    frames = _flickered(frames, flicker, settings.flicker_levels)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.stem}.partial.avi")  # OpenCV picks the container by suffix
    try:
        written = write_clip(partial, _reporting(frames, n_frames, progress), fps)
        if written != n_frames:
            raise FootageError(f"{out}: wrote {written} of {n_frames} frames")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    width, height = assets.frame_size
    shown = np.zeros(n_frames, dtype=bool)
    for walker in walkers:
        shown |= _drawn(walker.boxes, width, height)
    return QuietScene(out, n_frames, fps, _runs(shown))


def _scene_assets(source_video: Path) -> SceneAssets:
    """The median background of the footage and the single people cut out of it.

    Args:
        source_video: fixed-camera footage with people walking.

    Returns:
        Background, crops and perspective; no obstacles (the differencing sees none in the
        background itself).

    Raises:
        monitor.synth.video.FootageError, monitor.synth.crops.CropError: unreadable footage,
            too few usable people.
    """
    synth = SynthSettings()
    total = count_frames(source_video)
    still = read_frames(source_video, spread_indices(total, synth.background_frames))
    background = median_background(list(still.values()))
    sampled = read_frames(source_video, spread_indices(total, synth.crops.sample_frames))
    detect = _single_people(background, sampled, synth.crops)
    harvest = harvest_crops(sampled, background, detect, synth.crops)
    return SceneAssets(background, harvest.crops, harvest.perspective, (), harvest.rejected)


def _blobs(image: np.ndarray, background: np.ndarray, settings: CropSettings) -> list[Box]:
    """Boxes of the foreground blobs of ``image`` (BGR uint8) against the background."""
    mask = foreground_mask(image, background, settings)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [Box(float(x), float(y), float(x + w), float(y + h))
            for x, y, w, h, area in stats[1:count] if area >= MIN_BLOB_PX]


def _single_people(
    background: np.ndarray, sampled: Mapping[int, np.ndarray], settings: CropSettings
) -> Detect:
    """A detector made of differencing: score 1 for a blob shaped like one standing person,
    0 for any other blob (not cut, but still a neighbour that keeps crops isolated)."""
    # harvest_crops hands these same arrays back to detect(): keyed by identity (the mapping
    # keeps them alive), their blobs are found once, not twice.
    known = {id(image): _blobs(image, background, settings) for image in sampled.values()}
    # The fit drops outliers by their residual: groups and partial people do not bend it.
    perspective: Perspective = fit_perspective([b for boxes in known.values() for b in boxes],
                                               settings)

    def detect(image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        found = []
        blobs = known.get(id(image))
        for b in blobs if blobs is not None else _blobs(image, background, settings):
            height, expected = b.y2 - b.y1, float(perspective.height_at(b.y2))
            single = (abs(height - expected) <= ONE_PERSON_HEIGHT_TOL * expected
                      and b.x2 - b.x1 <= ONE_PERSON_MAX_ASPECT * height)
            found.append((b.x1, b.y1, b.x2, b.y2, 1.0 if single else 0.0))
        return found

    return detect


def _plan_walkers(
    cast: Cast, synth: SynthSettings, settings: QuietSceneSettings, n_frames: int
) -> tuple[Actor, ...]:
    """People crossing one at a time: a gap, a walker, a gap, another walker... until the end.

    The synth planner draws each crossing (crop, row, direction, speed) into a clip as long as
    the rest of the scene; with ``walker_visible_frac`` 1 the whole crossing lies inside that clip
    when it fits, and otherwise starts at its first frame and is cut where the scene ends.
    The crossing is then moved to start right after the gap.
    """
    rng = np.random.default_rng([settings.seed, _PLAN_STREAM])
    planner = ClipPlanner(rng, cast, synth)
    walkers: list[Actor] = []
    free_from = 0  # first frame after the last walker has walked off
    while True:
        gap_s = settings.walker_every_s * rng.uniform(1.0 - GAP_SPREAD, 1.0 + GAP_SPREAD)
        start = free_from + round(gap_s * synth.fps)
        if start >= n_frames:
            break
        # The previous walker's crop is taken: the same person twice in a row looks like a loop.
        taken = {walkers[-1].crop_index} if walkers else set()
        crossing = planner.crosser(n_frames - start, "walker", taken, labelled=False)
        present = np.flatnonzero(~np.isnan(crossing.trajectory.x))
        if present.size == 0:
            break  # cannot happen with walker_visible_frac 1; nothing left to place otherwise
        trajectory = _moved(crossing.trajectory, int(present[0]), int(present[-1]) + 1, start,
                            n_frames)
        boxes = trajectory_boxes(trajectory, cast.crops[crossing.crop_index])
        walkers.append(dataclasses.replace(crossing, trajectory=trajectory, boxes=boxes))
        free_from = start + len(present)
    return tuple(walkers)


def _moved(trajectory: Trajectory, first: int, stop: int, start: int, n_frames: int) -> Trajectory:
    """Frames ``first:stop`` of ``trajectory`` laid into a clip of ``n_frames`` from ``start``."""
    t = trajectory
    part = Segment(start, t.x[first:stop], t.y[first:stop], t.height_px[first:stop],
                   t.angle_deg[first:stop], t.lift_px[first:stop], t.thickness[first:stop])
    return assemble([part], n_frames)


def _flickered(
    frames: Iterable[np.ndarray], rng: np.random.Generator, levels: int
) -> Iterator[np.ndarray]:
    """Each frame brightened or darkened as a whole by a fresh offset in -``levels``..``levels``."""
    for image in frames:
        offset = int(rng.integers(-levels, levels + 1))
        # Saturating add: a pixel already at 0 or 255 stays there, as on a real sensor.
        if offset:
            image = np.asarray(cv2.add(image, np.array([offset, offset, offset, 0.0])))
        yield image


def _reporting(
    frames: Iterable[np.ndarray], total: int, progress: Callable[[int, int], None] | None
) -> Iterator[np.ndarray]:
    for done, image in enumerate(frames, start=1):
        yield image
        if progress is not None:
            progress(done, total)


def _drawn(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per frame, whether the box (n, 4; NaN when absent) reaches into the picture."""
    with np.errstate(invalid="ignore"):
        return np.asarray((boxes[:, 2] > 0) & (boxes[:, 0] < width)
                          & (boxes[:, 3] > 0) & (boxes[:, 1] < height))


def _runs(mask: np.ndarray) -> tuple[range, ...]:
    """The runs of True in a bool array, as ranges of indices."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return tuple(range(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True))


def _source_fps(path: Path) -> float:
    """The frame rate the footage declares.

    Raises:
        FootageError: missing, unreadable, or no usable frame rate.
    """
    if not path.is_file():
        raise FootageError(f"footage {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
    finally:
        capture.release()
    if not 0 < fps < 1000:  # also false for NaN
        raise FootageError(f"footage {path}: OpenCV cannot open it or reads no frame rate")
    return fps
