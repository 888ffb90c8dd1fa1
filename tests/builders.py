"""Small builders for unit tests: synthetic frames, detections and tracks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from monitor.types import Box, Detection, Detections, Frame, Track, Tracks

EPOCH = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
WIDTH, HEIGHT = 100, 100


def make_frame(t: float, *, camera: str = "cam1", index: int | None = None) -> Frame:
    """A blank 100x100 frame at t seconds after EPOCH (monotonic clock = t)."""
    return Frame(
        camera=camera,
        index=int(t * 10) if index is None else index,
        image=np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8),
        captured_at=EPOCH + timedelta(seconds=t),
        monotonic=t,
    )


def make_detection(
    box: tuple[float, float, float, float] = (10, 10, 30, 60),
    score: float = 0.9,
    label: str = "person",
    class_name: str = "Normal",
) -> Detection:
    return Detection(Box(*box), score, label, class_name)


def make_tracks(t: float, *tracks: tuple[int, Detection], camera: str = "cam1") -> Tracks:
    frame = make_frame(t, camera=camera)
    return Tracks(frame, tuple(Track(camera, tid, det) for tid, det in tracks))


def make_detections(t: float, *detections: Detection, camera: str = "cam1") -> Detections:
    return Detections(make_frame(t, camera=camera), tuple(detections))


def read_video(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video file, in order."""
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()
