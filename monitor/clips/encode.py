"""Buffered JPEG frames -> one H.264 MP4 that browsers play: yuv420p, ``moov`` before ``mdat``
(``+faststart``: playback starts before the whole file is fetched).

The only module that imports PyAV. Its wheel bundles FFmpeg with libx264, so no system
ffmpeg is needed; ``require_h264_encoder`` says so at start when a build lacks it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from monitor.clips.buffer import ClipFrame

ENCODER = "libx264"
TEMP_SUFFIX = ".tmp"  # as a snapshot's: retention removes a stray one


class ClipEncodeError(Exception):
    """The clip could not be made; ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class EncodedClip:
    """What was written.

    Attributes:
        path: the final file.
        frames: video frames in it (at the clip rate: a frame missing from the buffer is
            filled by the one before it).
        duration_s: its playing time.
        size_bytes: the file's size.
        starts_at: footage time of its first frame.
    """

    path: Path
    frames: int
    duration_s: float
    size_bytes: int
    starts_at: datetime


def require_h264_encoder() -> None:
    """Raise ``ClipEncodeError`` if PyAV's FFmpeg has no libx264 encoder."""
    try:
        av.codec.Codec(ENCODER, "w")
    except Exception as exc:  # noqa: BLE001 - UnknownCodecError and friends
        raise ClipEncodeError(
            f"PyAV {av.__version__} has no {ENCODER} encoder ({exc}); install a PyAV wheel that "
            "bundles it (pip install 'av>=14') or set [clips] enabled = false"
        ) from None


def frame_slots(frames: Sequence[ClipFrame], fps: float, end: datetime) -> list[int]:
    """Which buffered frame shows at each tick of a constant ``fps`` from the first frame to
    ``end`` (or one interval after the last frame, if that is sooner).

    A constant rate is what every player handles; the buffer's frames come at that rate
    give or take read jitter, and a gap (a stall) is shown as the picture before it.

    Returns:
        Indices into ``frames``, one per tick (empty: no frames).
    """
    if not frames:
        return []
    interval_s = 1.0 / fps
    start = frames[0].captured_at
    last_s = (frames[-1].captured_at - start).total_seconds()
    span_s = min((end - start).total_seconds(), last_s + interval_s)
    ticks = max(1, math.floor(span_s * fps + 1e-6))
    slots: list[int] = []
    index = 0
    for tick in range(ticks):
        at_s = tick * interval_s
        # The newest frame captured by this tick (with half an interval of slack for jitter).
        while (index + 1 < len(frames)
               and (frames[index + 1].captured_at - start).total_seconds() <= at_s + interval_s / 2):
            index += 1
        slots.append(index)
    return slots


def encode_clip(
    frames: Sequence[ClipFrame], path: Path, fps: float, end: datetime, crf: int,
) -> EncodedClip:
    """Write ``frames`` to ``path`` as an MP4, through a temporary file renamed at the end.

    Args:
        frames: oldest first, all of one size (one camera's ring).
        path: the final name; its folder is created.
        fps: the clip frame rate.
        end: footage time the clip ends at, at the latest.
        crf: x264's constant rate factor.

    Raises:
        ClipEncodeError: no frames, an undecodable frame, or the file cannot be written; no
            file is left behind.
    """
    if not frames:
        raise ClipEncodeError("no buffered frames in the clip's time span")
    slots = frame_slots(frames, fps, end)
    temp = path.with_name(path.stem + TEMP_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(frames, slots, temp, fps, crf)
        os.replace(temp, path)  # readers never see a half-written clip
        size = path.stat().st_size
    except (OSError, av.FFmpegError, ValueError) as exc:
        temp.unlink(missing_ok=True)
        raise ClipEncodeError(f"cannot write clip {path}: {exc}") from None
    return EncodedClip(path, len(slots), len(slots) / fps, size, frames[0].captured_at)


def _write(frames: Sequence[ClipFrame], slots: list[int], temp: Path, fps: float,
           crf: int) -> None:
    first = _decode(frames[0])
    height, width = first.shape[:2]
    # format= because of the temporary name's suffix; faststart rewrites the file once at the
    # end to put the index (moov) first.
    with av.open(str(temp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream(ENCODER, rate=Fraction(fps).limit_denominator(1001))
        if not isinstance(stream, av.VideoStream):
            raise ValueError(f"{ENCODER} did not give a video stream")
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # One thread: clips are background work on a machine whose cores belong to detection.
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        decoded: dict[int, np.ndarray] = {0: first}
        for pts, index in enumerate(slots):
            image = decoded.get(index)
            if image is None:
                decoded.clear()  # slots only move forward: keep the current picture only
                image = decoded[index] = _decode(frames[index])
            # reformat also scales a frame of another size (a camera that reconnected at another
            # resolution) to the clip's.
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(
                width=width, height=height, format="yuv420p")
            frame.pts = pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _decode(frame: ClipFrame) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("a buffered frame is not a decodable JPEG")
    return np.asarray(image)
