"""``monitor eval``: the full pipeline on labelled clips, scored per decider.

Each clip is one camera. Its frames go through the real detector (at the config's
``detect_fps``, on motion regions as the daemon infers) and one tracker; the same tracks then feed one event lifecycle
plus behaviour decider per decider (per-frame labels, rules, temporal model), so the deciders are
compared on identical detections. An event still open at the clip's end is closed at its track's
last sighting, as the daemon does at shutdown. Clip time is frame index / clip fps.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from monitor.config import Config, MotionConfig
from monitor.detect.regions import RegionDetector
from monitor.detect.yolo import YoloDetector
from monitor.evaluate.annotations import KINDS, MOMENT_KINDS, Interval, moment_span
from monitor.evaluate.matching import KindScore, score
from monitor.events.lines import CrossingKey
from monitor.events.snapshot import SnapshotWriter
from monitor.pipeline import CameraPipeline, build_camera_pipeline
from monitor.temporal.checkpoint import Checkpoint
from monitor.ingest.motion import MotionDetector, combine
from monitor.track.bytetrack import ByteTracker
from monitor.types import Alert, AlertType, Event, Frame, Motion

log = logging.getLogger(__name__)

DECIDERS: tuple[str, ...] = ("per_frame", "rules", "temporal")
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov"})
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # clip time 0; only differences matter
_FALLBACK_FPS = 10.0  # a container that does not say its frame rate


class EvalError(Exception):
    """The clips cannot be evaluated; ``str()`` is one line."""


@dataclass
class ClipResult:
    """What one clip produced: predicted intervals per decider and a few counts."""

    clip: str
    frames: int = 0
    seconds: float = 0.0
    detected_frames: int = 0
    detections: int = 0
    fall_boxes: int = 0
    predicted: dict[str, list[Interval]] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=dict)  # every ended event, any kind
    crossings: dict[CrossingKey, int] = field(default_factory=dict)  # the lines' counts


@dataclass
class EvalReport:
    clips: list[ClipResult]
    scores: dict[str, dict[str, KindScore]]
    min_iou: float

    def predicted_counts(self) -> dict[str, dict[str, int]]:
        """decider -> kind -> predicted events (over all clips)."""
        counts: dict[str, Counter[str]] = {}
        for clip in self.clips:
            for decider, intervals in clip.predicted.items():
                counts.setdefault(decider, Counter()).update(i.kind for i in intervals)
        return {d: {k: c[k] for k in KINDS} for d, c in counts.items()}


class _Collect:
    """An alert sink that keeps ended events as intervals of clip time."""

    def __init__(self, clip: str) -> None:
        self.clip = clip
        self.intervals: list[Interval] = []
        self.ended: list[Event] = []

    def emit(self, alert: Alert) -> None:
        event = alert.event
        if alert.type is AlertType.END:
            self.ended.append(event)
        # An unannounced event (an object that never moved) was never an alert.
        if alert.type is not AlertType.END or event.kind.value not in KINDS or not event.announced:
            return
        assert event.end_time is not None
        start = (event.start_time - _EPOCH).total_seconds()
        end = (event.end_time - _EPOCH).total_seconds()
        if event.kind.value in MOMENT_KINDS:
            start, end = moment_span(start)
        elif end <= start:  # a one-sighting event: give it one frame's length, not zero
            end = start + 0.1
        self.intervals.append(Interval(self.clip, event.kind.value, start, end))


def list_clips(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise EvalError(f"clips folder {folder}: no such directory")
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise EvalError(f"clips folder {folder}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return clips


def _frames(path: Path, detect_fps: float,
            motion: MotionConfig) -> Iterator[tuple[Frame, int, float]]:
    """The clip's frames the detector sees at ``detect_fps``, each with the number of frames read
    so far and the clip time they cover (seconds), and, as in the daemon's capture thread, what
    moved since the previous one (every frame read is shown to the motion detector)."""
    watcher = MotionDetector(motion) if motion.enabled else None
    moved: Motion | None = None
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise EvalError(f"clip {path}: cannot be opened as a video")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or _FALLBACK_FPS
        every = max(1, round(fps / detect_fps))
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if watcher is not None:
                moved = combine(moved, watcher.update(image), first=index % every == 1 % every)
            if index % every == 0:
                seconds = index / fps
                yield Frame(
                    camera=path.stem.replace(".", "_"),
                    index=index,
                    image=np.ascontiguousarray(image),
                    captured_at=_EPOCH + timedelta(seconds=seconds),
                    monotonic=seconds,
                    motion=moved,
                ), index + 1, (index + 1) / fps
            index += 1
    finally:
        capture.release()


def evaluate_clip(
    path: Path,
    detector: YoloDetector,
    config: Config,
    checkpoint: Checkpoint | None,
    *,
    deciders: Sequence[str] = DECIDERS,
    on_frames: Callable[[int], None] = lambda n: None,
) -> ClipResult:
    """Run one clip through detector (on motion regions, as the daemon does), tracker and one
    lifecycle + decider per decider."""
    camera = config.cameras[0]
    result = ClipResult(path.name)
    tracker = ByteTracker(camera.name, config.tracker, camera.detect_fps)
    # Events here carry no snapshot path, so this never writes.
    snapshots = SnapshotWriter(Path("."), config.events.snapshot_quality)
    sinks: dict[str, _Collect] = {}
    pipelines: dict[str, CameraPipeline] = {}
    for name in deciders:
        sinks[name] = _Collect(path.name)
        pipelines[name] = build_camera_pipeline(
            camera, config, sinks[name], snapshots, checkpoint,
            tracker=tracker, decider=name, with_snapshots=False,
        )
    pending: list[Frame] = []
    read = 0
    memory_s = config.detector.regions.track_memory_s
    # Every decider's pipeline sees the same tracks and confirms them alike: ask the first.
    first = pipelines[deciders[0]]
    regional = RegionDetector(detector, config.detector.regions,
                              lambda _camera, now: first.recent_tracks(now, memory_s))

    def flush() -> None:
        for detections in regional.detect(pending):
            tracks = tracker.update(detections)
            result.detected_frames += 1
            result.detections += len(detections.items)
            result.fall_boxes += sum(d.class_name == "Fall" for d in detections.items)
            for pipeline in pipelines.values():
                pipeline.process_tracks(tracks)
        pending.clear()

    for frame, read_total, covered_s in _frames(path, camera.detect_fps, config.motion):
        # One frame at a time, as the daemon serves one camera: the next frame's regions
        # depend on the tracks this one leaves.
        pending.append(frame)
        on_frames(read_total - read)
        read = read_total
        result.seconds = covered_s
        flush()
    result.frames = read
    result.crossings = first.crossing_counts()
    for name, pipeline in pipelines.items():
        pipeline.close()
        result.predicted[name] = sinks[name].intervals
        result.events[name] = sinks[name].ended
    return result


def run_eval(
    clips: Sequence[Path],
    truth: Sequence[Interval],
    detector: YoloDetector,
    config: Config,
    checkpoint: Checkpoint | None,
    *,
    deciders: Sequence[str] = DECIDERS,
    min_iou: float = 0.3,
    progress: bool = True,
) -> EvalReport:
    """Evaluate every clip and score each decider against the labels."""
    from tqdm import tqdm

    names = {c.name for c in clips}
    unknown = sorted({t.clip for t in truth} - names)
    if unknown:
        raise EvalError(f"annotations name clips that are not in the folder: {', '.join(unknown[:5])}")
    total = 0
    for clip in clips:
        capture = cv2.VideoCapture(str(clip))
        total += int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        capture.release()
    results = []
    with tqdm(total=total, unit="frame", desc="eval", disable=not progress) as bar:
        for clip in clips:
            bar.set_postfix_str(clip.name)
            results.append(
                evaluate_clip(clip, detector, config, checkpoint, deciders=deciders,
                              on_frames=bar.update)
            )
    scores = {
        name: score(truth, [i for r in results for i in r.predicted[name]], min_iou=min_iou)
        for name in deciders
    }
    return EvalReport(results, scores, min_iou)
