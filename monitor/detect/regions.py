"""Which parts of a frame the detector must look at.

The detector's cost grows with the pixels it is given. A frame needs looking at where something
moved (``Frame.motion``) and where a person was recently seen (they may stand still); the rest
of the picture cannot hold anyone new. Each such area is grown so the detector sees the whole
person around a moving limb, overlapping areas are merged, and when the areas cover much of the
frame the whole frame is inferred instead (one image is cheaper than many overlapping crops).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from monitor.config import RegionsConfig
from monitor.detect.mosaic import CropJob, blank_canvas, canvas_heights, pack, unpack
from monitor.geometry import merge_overlapping
from monitor.types import Box, Detection, Detections, Frame


@dataclass(frozen=True, slots=True)
class RegionPlan:
    """What the detector does with one frame.

    Attributes:
        frame: the frame.
        crops: None: infer the whole frame; empty: skip inference (nothing moved, no one is
            known to be there); otherwise the rectangles to infer, in whole frame pixels.
    """

    frame: Frame
    crops: tuple[Box, ...] | None

    @property
    def skipped(self) -> bool:
        return self.crops == ()


def plan_regions(frame: Frame, recent_tracks: Sequence[Box],
                 config: RegionsConfig) -> RegionPlan:
    """Decide what to infer in ``frame``.

    Args:
        frame: a frame due for detection, with the motion since the camera's previous one.
        recent_tracks: last boxes of this camera's tracks seen within ``track_memory_s``.
        config: the ``[detector.regions]`` section.

    Returns:
        Skip when nothing moved and no track is recent; the whole frame when motion is unknown,
        regions are off, or the regions would cover more than ``max_fraction``; else the crops.
    """
    if frame.motion is None:
        return RegionPlan(frame, None)
    if not frame.motion.regions and not recent_tracks:
        return RegionPlan(frame, ())
    if not config.enabled:
        return RegionPlan(frame, None)
    grown = [_grow(box, config.margin, config.min_size_px, frame.width, frame.height)
             for box in frame.motion.regions]
    grown += [_grow(box, config.track_margin, config.min_size_px, frame.width, frame.height)
              for box in recent_tracks]
    crops = merge_overlapping([box for box in grown if box.x1 < box.x2 and box.y1 < box.y2])
    if not crops:  # only boxes outside this frame (a stream that changed size)
        return RegionPlan(frame, None)
    covered = sum((c.x2 - c.x1) * (c.y2 - c.y1) for c in crops)
    if covered > config.max_fraction * frame.width * frame.height:
        return RegionPlan(frame, None)
    return RegionPlan(frame, tuple(crops))


def _grow(box: Box, margin: float, min_size_px: int, width: int, height: int) -> Box:
    """``box`` grown on every side by ``margin`` of its longer side, at least ``min_size_px``
    square, clipped to the frame (empty if it lies outside), on whole pixels."""
    w, h = box.x2 - box.x1, box.y2 - box.y1
    pad = margin * max(w, h)
    half_w = max(w / 2 + pad, min_size_px / 2)
    half_h = max(h / 2 + pad, min_size_px / 2)
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    return Box(float(max(0, int(cx - half_w))), float(max(0, int(cy - half_h))),
               float(min(width, int(cx + half_w + 0.999))),
               float(min(height, int(cy + half_h + 0.999))))




def warm_canvas_sizes(detector: ImageDetector) -> None:
    """Run the model once at every canvas size. Runtimes prepare each new input shape on its
    first call (torch: up to a second); without this the first minutes of a fresh daemon
    would pay that inside the detection loop, one camera round at a time."""
    for height in canvas_heights(detector.imgsz):
        detector.detect_images([blank_canvas(height, detector.imgsz)])


class ImageDetector(Protocol):
    """The model: boxes in each image's own pixels (``YoloDetector``)."""

    imgsz: int

    def detect_images(self, images: Sequence[np.ndarray]) -> list[tuple[Detection, ...]]: ...


@dataclass(frozen=True, slots=True)
class RegionStats:
    """What a ``RegionDetector`` did since start.

    Attributes:
        whole: frames inferred whole, per camera.
        regions: frames inferred as crops, per camera.
        skipped: frames not inferred (nothing moved, no recent track), per camera.
        held: frames not inferred because nothing moved: the last detections were kept.
        inputs: detector calls by input shape (batch, height, width).
        inference_s: wall seconds inside the model.
        pixels: pixels given to the model.
    """

    whole: dict[str, int]
    regions: dict[str, int]
    skipped: dict[str, int]
    held: dict[str, int]
    inputs: dict[tuple[int, int, int], int]
    inference_s: float
    pixels: int


class RegionDetector:
    """Detects in a round of frames (any cameras) looking only where it must.

    Frames that need nothing skip the model; whole frames are batched by size; the crops of every
    other frame share one packed image (see ``mosaic``). Only the inference thread calls it.

    Args:
        detector: the model.
        config: the ``[detector.regions]`` section.
        recent_tracks: (camera, now) -> last boxes of that camera's tracks seen within
            ``track_memory_s`` (the pipelines know them).
        on_inference: called after every detector call with its seconds and input shape
            (batch, height, width), in the inference thread (the latency histogram).
    """

    def __init__(
        self,
        detector: ImageDetector,
        config: RegionsConfig,
        recent_tracks: Callable[[str, float], Sequence[Box]],
        on_inference: Callable[[float, tuple[int, int, int]], None] | None = None,
    ) -> None:
        self._detector = detector
        self._on_inference = on_inference
        self._config = config
        self._recent_tracks = recent_tracks
        self._whole: Counter[str] = Counter()
        self._regions: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._held: Counter[str] = Counter()
        # camera -> (monotonic time of its last inferred frame, what was found in it)
        self._last_inferred: dict[str, tuple[float, tuple[Detection, ...]]] = {}
        self._inputs: Counter[tuple[int, int, int]] = Counter()
        self._inference_s = 0.0
        self._pixels = 0
        self._lock = threading.Lock()  # stats() is read from other threads

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        recents = [self._recent_tracks(f.camera, f.monotonic) for f in frames]
        plans = [plan_regions(f, r, self._config) for f, r in zip(frames, recents, strict=True)]
        found: list[list[Detection]] = [[] for _ in plans]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        jobs = []
        inferred = [False] * len(plans)
        for index, plan in enumerate(plans):
            camera = plan.frame.camera
            held = self._unchanged(plan)
            inferred[index] = held is None and not plan.skipped
            if held is not None:
                found[index].extend(held)
                counter = self._held
            elif plan.crops is None:
                by_shape.setdefault(plan.frame.image.shape, []).append(index)
                counter = self._whole
            elif plan.skipped:
                counter = self._skipped
            else:
                # The scale the whole frame would have: people keep the size the model sees.
                scale = self._detector.imgsz / max(plan.frame.width, plan.frame.height)
                jobs += [CropJob(index, plan.frame.image, c, scale) for c in plan.crops]
                counter = self._regions
            with self._lock:
                counter[camera] += 1
        for members in by_shape.values():
            results = self._infer([plans[i].frame.image for i in members])
            for index, items in zip(members, results, strict=True):
                found[index].extend(items)
        for canvas in pack(jobs, self._detector.imgsz, self._config.gap_px):
            for owner, mapped in unpack(canvas, self._infer([canvas.image])[0]).items():
                found[owner].extend(mapped)
        answers = []
        for plan, boxes, was_inferred in zip(plans, found, inferred, strict=True):
            answers.append(Detections(plan.frame, tuple(boxes), held=not was_inferred
                                      and not plan.skipped))
            if was_inferred:
                self._last_inferred[plan.frame.camera] = (plan.frame.monotonic, tuple(boxes))
        return answers

    def _unchanged(self, plan: RegionPlan) -> tuple[Detection, ...] | None:
        """The camera's last detections, if nothing in the picture moved since (the model
        would find the same) and they are younger than ``still_recheck_s``; else None. They
        go on marked ``held``: they keep tracks alive but confirm no event."""
        motion = plan.frame.motion
        if motion is None or motion.regions or not plan.crops:
            return None
        last = self._last_inferred.get(plan.frame.camera)
        if last is None or plan.frame.monotonic - last[0] >= self._config.still_recheck_s:
            return None
        return last[1]

    def _infer(self, images: list[np.ndarray]) -> list[tuple[Detection, ...]]:
        height, width = images[0].shape[:2]
        started = time.perf_counter()
        results = self._detector.detect_images(images)
        took_s = time.perf_counter() - started
        if self._on_inference is not None:
            self._on_inference(took_s, (len(images), height, width))
        with self._lock:
            self._inference_s += took_s
            self._inputs[(len(images), height, width)] += 1
            self._pixels += len(images) * height * width
        return results

    def stats(self) -> RegionStats:
        with self._lock:
            return RegionStats(dict(self._whole), dict(self._regions), dict(self._skipped),
                               dict(self._held), dict(self._inputs), self._inference_s,
                               self._pixels)
