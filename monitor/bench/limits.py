"""The limits reference of ``monitor bench``: what decoding and inference alone cost.

No pipeline around them: decoding one file as fast as one thread can, and the detector's batched
inference on fixed images of given shapes. The daemon cannot beat these; the gap between them
and the daemon is its overhead.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from monitor.redact import redact_url
from monitor.detect.worker import Detector
from monitor.ingest.source import ensure_rtsp_capture_options, is_local_file
from monitor.types import Frame


class LimitsError(Exception):
    """The video cannot be opened or read; one line naming the file or stream."""


@dataclass(frozen=True, slots=True)
class DecodeLimit:
    """Decoding cost of one file or stream in one thread.

    Attributes:
        frames: frames decoded (a file looped as needed).
        width: frame width, pixels.
        height: frame height, pixels.
        wall_s: wall time of the decode, seconds.
        cpu_s: process CPU time of the decode (decoder threads included), seconds.
        cpu_ms_per_frame: ``cpu_s`` per frame, milliseconds.
        fps: frames per wall second (a stream's: its own frame rate, as it paces the reads).
    """

    frames: int
    width: int
    height: int
    wall_s: float
    cpu_s: float
    cpu_ms_per_frame: float
    fps: float


@dataclass(frozen=True, slots=True)
class InferenceRow:
    """One batch shape's inference cost (medians over the repeats, after one warm-up call).

    Attributes:
        batch: images per call.
        height: image height, pixels.
        width: image width, pixels.
        repeats: timed calls.
        wall_ms: median wall time per call, milliseconds.
        cpu_ms: median process CPU time per call (all torch threads), milliseconds.
        wall_ms_per_image: ``wall_ms / batch``.
    """

    batch: int
    height: int
    width: int
    repeats: int
    wall_ms: float
    cpu_ms: float
    wall_ms_per_image: float


@dataclass(frozen=True, slots=True)
class InferenceLimit:
    """The detector's cost per batch shape.

    Attributes:
        torch_threads: torch intra-op threads of the measuring thread (after the warm-up call,
            which is when the detector sets them).
        real_images: True if the images were real footage, False if synthetic.
        rows: one per requested shape, in order.
    """

    torch_threads: int
    real_images: bool
    rows: tuple[InferenceRow, ...]


def _open(video: Path | str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise LimitsError(f"{redact_url(str(video))}: cannot be opened as a video")
    return capture


def decode_limit(video: Path | str, frames: int) -> DecodeLimit:
    """Decode ``frames`` frames of ``video`` as fast as possible in the calling thread.

    A file starts over at its end. A stream (``rtsp://...``) is read as it comes, so its wall
    time is the stream's and only the CPU time means anything: it includes receiving and
    depacketising, which the daemon's capture threads do too. Opening is not timed. OpenCV's
    FFmpeg backend may run decoder threads of its own, as in the daemon's capture threads;
    their CPU time is counted.

    Args:
        video: a video file, or a stream URL.
        frames: frames to decode, >= 1.

    Returns:
        The decode cost and speed.

    Raises:
        LimitsError: the source cannot be opened, yields no frame, or a stream ends early.
    """
    if frames < 1:
        raise ValueError(f"frames={frames}: expected >= 1")
    live = not is_local_file(str(video))
    if live:
        ensure_rtsp_capture_options()  # the daemon's transport, so the same work is measured
    capture = _open(video)
    try:
        width, height = 0, 0
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(frames):
            ok, image = capture.read()
            if not ok and live:
                raise LimitsError(f"{redact_url(str(video))}: the stream ended or failed to read")
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = capture.read()
                if not ok:
                    raise LimitsError(f"{video}: no frame could be read")
            height, width = image.shape[:2]
        wall_s = time.perf_counter() - wall_start
        cpu_s = time.process_time() - cpu_start
    finally:
        capture.release()
    return DecodeLimit(
        frames=frames,
        width=width,
        height=height,
        wall_s=wall_s,
        cpu_s=cpu_s,
        cpu_ms_per_frame=cpu_s * 1000.0 / frames,
        fps=frames / wall_s if wall_s > 0 else float("inf"),
    )


def sample_images(video: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over ``video``: real pictures for `inference_limit`.

    Args:
        video: a video file.
        count: frames wanted, >= 1.

    Returns:
        BGR uint8 arrays (H, W, 3), in clip order.

    Raises:
        LimitsError: the file cannot be opened or a frame cannot be read.
    """
    if count < 1:
        raise ValueError(f"count={count}: expected >= 1")
    capture = _open(video)
    try:
        total = max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        images = []
        for n in range(count):
            capture.set(cv2.CAP_PROP_POS_FRAMES, n * total // count)
            ok, image = capture.read()
            if not ok:
                raise LimitsError(f"{video}: cannot read frame {n * total // count}")
            images.append(image)
    finally:
        capture.release()
    return images


def fit_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``image`` to cover ``height`` x ``width`` keeping its aspect, then crop the centre.

    Args:
        image: BGR (H, W, 3).
        height: wanted height, pixels.
        width: wanted width, pixels.

    Returns:
        A new contiguous BGR array of shape (height, width, 3).
    """
    scale = max(height / image.shape[0], width / image.shape[1])
    scaled_w = max(width, round(image.shape[1] * scale))
    scaled_h = max(height, round(image.shape[0] * scale))
    # INTER_AREA when shrinking: no aliasing, so the picture stays realistic for the detector.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (scaled_w, scaled_h), interpolation=interpolation)
    top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
    return np.ascontiguousarray(scaled[top:top + height, left:left + width])


def synthetic_image(height: int, width: int) -> np.ndarray:
    """A smooth picture without noise (gradients and a few blocks): what is run without footage.

    Args:
        height: pixels.
        width: pixels.

    Returns:
        BGR uint8 (height, width, 3).
    """
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.stack([np.broadcast_to(rows, (height, width)),
                      np.broadcast_to(cols, (height, width)),
                      (rows + cols) / 2], axis=2).astype(np.uint8)
    for n in range(4):  # person-sized upright blocks, so the picture is not empty to the model
        x, y = (n + 1) * width // 6, height // 3
        image[y:y + height // 3, x:x + max(1, width // 20)] = (40 * n, 80, 200 - 40 * n)
    return image


@dataclass(frozen=True, slots=True)
class PacedInference:
    """The model alone, called as the daemon called it, against the same calls back to back.

    Back-to-back calls of one shape (`InferenceLimit`) are the runtime's best case; a live
    load lighter than the machine leaves gaps between calls and packing changes the shape
    almost every call: between calls the runtime's threads sleep and its caches go cold. Both
    figures here are means over the same calls, so their ratio is the cost of the pattern.

    Attributes:
        calls: timed calls, drawn from the daemon's mix of input shapes.
        gap_ms: time after each paced call, milliseconds.
        wall_ms: mean wall time of a paced call (random order, gaps), milliseconds.
        cpu_ms: process CPU time of the paced run per call, gaps included (a runtime thread
            that spins between calls counts), milliseconds.
        back_to_back_wall_ms: mean wall time of the same calls grouped by shape, no gaps.
        back_to_back_cpu_ms: process CPU time of those per call, milliseconds.
    """

    calls: int
    gap_ms: float
    wall_ms: float
    cpu_ms: float
    back_to_back_wall_ms: float
    back_to_back_cpu_ms: float


def paced_inference(
    detector: Detector,
    shape_calls: Sequence[tuple[tuple[int, int, int], int]],
    calls: int,
    gap_s: float,
    *,
    images: Sequence[np.ndarray] | None = None,
    seed: int = 0,
) -> PacedInference:
    """Call the detector ``calls`` times on shapes drawn in proportion to ``shape_calls``:
    first grouped by shape with no gaps (each group after an untimed call), then in random
    order with ``gap_s`` after each call.

    Args:
        detector: as for `inference_limit`.
        shape_calls: ((batch, height, width), how often the daemon ran it) pairs.
        calls: timed calls, >= 1.
        gap_s: seconds after each paced call, >= 0.
        images: real pictures, as for `inference_limit`.
        seed: the draw's random seed (the same run, the same calls).

    Returns:
        The mean cost of a call both ways.
    """
    if calls < 1 or gap_s < 0 or not shape_calls or any(n < 1 for _, n in shape_calls):
        raise ValueError(f"calls={calls} (>= 1), gap_s={gap_s} (>= 0), shape_calls="
                         f"{list(shape_calls)} (not empty, counts >= 1): out of range")
    batches = {shape: _frames(shape, images) for shape, _ in shape_calls}
    order = random.Random(seed).choices([shape for shape, _ in shape_calls],
                                        weights=[n for _, n in shape_calls], k=calls)
    grouped_wall_ms = grouped_cpu_ms = 0.0
    for shape, count in sorted(Counter(order).items()):
        _time_call(detector, batches[shape])  # a shape's first call after another allocates
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(count):
            detector.detect(batches[shape])
        grouped_wall_ms += (time.perf_counter() - wall_start) * 1000.0
        grouped_cpu_ms += (time.process_time() - cpu_start) * 1000.0
    paced_wall_ms = 0.0
    cpu_start = time.process_time()
    for shape in order:
        paced_wall_ms += _time_call(detector, batches[shape])[0]
        time.sleep(gap_s)
    paced_cpu_ms = (time.process_time() - cpu_start) * 1000.0
    return PacedInference(calls=calls, gap_ms=gap_s * 1000.0, wall_ms=paced_wall_ms / calls,
                          cpu_ms=paced_cpu_ms / calls, back_to_back_wall_ms=grouped_wall_ms / calls,
                          back_to_back_cpu_ms=grouped_cpu_ms / calls)


def _frames(shape: tuple[int, int, int], images: Sequence[np.ndarray] | None) -> list[Frame]:
    batch, height, width = shape
    pictures = (
        [fit_image(images[i % len(images)], height, width) for i in range(batch)]
        if images else [synthetic_image(height, width)] * batch
    )
    return [Frame("bench", i, picture, datetime.now(UTC), time.monotonic())
            for i, picture in enumerate(pictures)]


def _time_call(detector: Detector, frames: Sequence[Frame]) -> tuple[float, float]:
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    detector.detect(frames)
    return (time.perf_counter() - wall_start) * 1000.0, (time.process_time() - cpu_start) * 1000.0


def inference_limit(
    detector: Detector,
    shapes: Sequence[tuple[int, int, int]],
    repeats: int,
    *,
    images: Sequence[np.ndarray] | None = None,
) -> InferenceLimit:
    """Time the detector's batched inference for each (batch, height, width) shape.

    Each shape gets one untimed warm-up call, then ``repeats`` timed calls on the same batch.

    Args:
        detector: e.g. ``monitor.detect.yolo.YoloDetector(DetectorConfig())``; called from this
            thread only.
        shapes: (batch, height, width) per row; batch >= 1.
        repeats: timed calls per shape, >= 1.
        images: real pictures (see `sample_images`), fitted to each shape and used in turn
            within a batch; None runs `synthetic_image` (NMS then sees unrealistically few boxes).

    Returns:
        One row per shape, in order.
    """
    import torch  # heavy: only when inference is measured

    if repeats < 1 or any(b < 1 or h < 1 or w < 1 for b, h, w in shapes):
        raise ValueError(f"repeats={repeats} (>= 1), shapes={list(shapes)} (all >= 1): out of range")
    rows = []
    for batch, height, width in shapes:
        frames = _frames((batch, height, width), images)
        _time_call(detector, frames)  # warm-up: the first call of a shape allocates
        timings = [_time_call(detector, frames) for _ in range(repeats)]
        wall_ms = statistics.median(t[0] for t in timings)
        rows.append(InferenceRow(
            batch=batch,
            height=height,
            width=width,
            repeats=repeats,
            wall_ms=wall_ms,
            cpu_ms=statistics.median(t[1] for t in timings),
            wall_ms_per_image=wall_ms / batch,
        ))
    return InferenceLimit(
        torch_threads=torch.get_num_threads(), real_images=bool(images), rows=tuple(rows)
    )
