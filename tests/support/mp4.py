"""Reading an MP4 back the way a browser would need it: its top-level boxes, its stream, and
every frame decoded (by OpenCV, not the library that wrote it)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av
import cv2


def top_level_boxes(path: Path) -> list[str]:
    """The types of the file's top-level boxes (atoms), in file order."""
    data = path.read_bytes()
    boxes: list[str] = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:  # a 64-bit size follows the type
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        elif size == 0:  # to the end of the file
            size = len(data) - offset
        if size < 8:
            raise ValueError(f"bad box size {size} at {offset}")
        boxes.append(kind.decode("latin-1"))
        offset += size
    assert offset == len(data), "boxes do not add up to the file"
    return boxes


@dataclass(frozen=True, slots=True)
class ProbedClip:
    codec: str
    pix_fmt: str
    width: int
    height: int
    duration_s: float
    frames_declared: int
    frames_decoded: int


def probe(path: Path) -> ProbedClip:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        codec = stream.codec_context
        declared = (stream.frames, float(stream.duration * stream.time_base))
        described = (codec.name, str(codec.pix_fmt), codec.width, codec.height)
    capture = cv2.VideoCapture(str(path))
    decoded = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        assert image.shape[:2] == (described[3], described[2])
        decoded += 1
    capture.release()
    return ProbedClip(described[0], described[1], described[2], described[3], declared[1],
                      declared[0], decoded)
