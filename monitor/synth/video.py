"""Reading sampled frames from the source footage and writing composed clips (OpenCV video I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

CLIP_FOURCC = "MJPG"  # in .avi: written and read back by every OpenCV build, no licence issues


class FootageError(Exception):
    """The source footage cannot be read; ``str()`` names the file and the reason."""


def spread_indices(total: int, count: int) -> tuple[int, ...]:
    """``count`` frame indices spread evenly over ``total`` frames (all of them if fewer).

    Args:
        total: frames in the video.
        count: how many to pick.

    Returns:
        Sorted, distinct indices in ``0..total-1``.
    """
    if total <= 0 or count <= 0:
        return ()
    if count >= total:
        return tuple(range(total))
    # Centre each pick in its slice so neither the first nor the last frame is over-represented.
    return tuple(int((i + 0.5) * total / count) for i in range(count))


def count_frames(path: Path) -> int:
    """Frames in a video, counted by decoding (container headers of .avi files are often wrong)."""
    capture = _open(path)
    total = 0
    try:
        while capture.grab():
            total += 1
    finally:
        capture.release()
    if total == 0:
        raise FootageError(f"footage {path}: no frame could be decoded")
    return total


def read_frames(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode the frames at ``indices`` in one sequential pass (seeking is unreliable in .avi).

    Args:
        path: the video file.
        indices: frame indices to keep.

    Returns:
        Index -> BGR uint8 image (H, W, 3); indices past the end are missing.
    """
    wanted = set(indices)
    last = max(wanted, default=-1)
    capture = _open(path)
    frames: dict[int, np.ndarray] = {}
    try:
        for index in range(last + 1):
            if index in wanted:
                ok, image = capture.read()
                if not ok:
                    break
                frames[index] = image
            elif not capture.grab():
                break
    finally:
        capture.release()
    return frames


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write BGR frames as an MJPG .avi; the size is taken from the first frame.

    Args:
        path: output file (its folder must exist).
        frames: BGR uint8 images, all the same size.
        fps: frame rate stored in the file.

    Returns:
        The number of frames written.
    """
    writer: cv2.VideoWriter | None = None
    written = 0
    try:
        for image in frames:
            if writer is None:
                height, width = image.shape[:2]
                writer = cv2.VideoWriter(
                    str(path), cv2.VideoWriter.fourcc(*CLIP_FOURCC), fps, (width, height)
                )
                if not writer.isOpened():
                    raise FootageError(f"cannot open {path} for writing ({CLIP_FOURCC})")
            writer.write(image)
            written += 1
    finally:
        if writer is not None:
            writer.release()
    return written


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise FootageError(f"footage {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise FootageError(f"footage {path}: OpenCV cannot open it")
    return capture
