"""Packing crops of several cameras' frames into one detector image, and mapping boxes back.

This is the daemon's cross-camera batch: on a CPU a batch of N images costs about N times one
image, so batching whole frames saves little; what saves is giving the detector fewer pixels.
The moving parts of every camera due in a round are cut out, scaled as the whole frame would be
scaled for the detector (people keep the size the model sees them at), and packed in rows onto
one grey image ``imgsz`` wide and only as tall as needed. The detector then runs once for all
cameras, on an image a fraction of a frame's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from monitor.types import Box, Detection

# ultralytics pads inputs to a multiple of the model's largest stride; a canvas of that height
# is inferred as it is.
_STRIDE = 32
# The letterbox grey ultralytics pads with: the gaps look like the padding the model was trained on.
_PAD_GREY = 114


@dataclass(frozen=True, slots=True)
class CropJob:
    """One rectangle of one frame to detect in.

    Attributes:
        owner: index of the frame it belongs to (the caller's numbering).
        image: that frame's BGR picture.
        crop: the rectangle, whole frame pixels.
        scale: detector pixels per frame pixel (the scale the whole frame would be inferred at).
    """

    owner: int
    image: np.ndarray
    crop: Box
    scale: float


@dataclass(frozen=True, slots=True)
class Tile:
    """Where one crop sits on a canvas."""

    owner: int
    crop: Box
    scale: float
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Canvas:
    """One detector input holding several crops."""

    image: np.ndarray
    tiles: tuple[Tile, ...]


def canvas_heights(width: int) -> range:
    """Every height a canvas ``width`` wide can have."""
    return range(_STRIDE, width + 1, _STRIDE)


def blank_canvas(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), _PAD_GREY, dtype=np.uint8)


def pack(jobs: Sequence[CropJob], width: int, gap_px: int) -> list[Canvas]:
    """Shelf-pack the scaled crops onto canvases ``width`` wide and at most ``width`` tall.

    Args:
        jobs: the crops; each scaled crop must fit within ``width`` x ``width``.
        width: canvas width: the detector's ``imgsz``, so the canvas is inferred unscaled.
        gap_px: grey space between crops.

    Returns:
        Canvases, each a multiple of 32 pixels tall (one, unless the crops do not fit on one).
    """
    sized = []
    for job in jobs:
        w = max(1, round((job.crop.x2 - job.crop.x1) * job.scale))
        h = max(1, round((job.crop.y2 - job.crop.y1) * job.scale))
        if w > width or h > width:
            raise ValueError(f"crop {job.crop} at scale {job.scale:.3f} does not fit {width} px")
        sized.append((job, w, h))
    sized.sort(key=lambda item: -item[2])  # tallest first: rows waste less height
    pages: list[list[Tile]] = [[]]
    x = y = row_height = 0
    for job, w, h in sized:
        if x > 0 and x + w > width:  # next row
            x, y, row_height = 0, y + row_height + gap_px, 0
        if y + h > width:  # next canvas
            pages.append([])
            x = y = row_height = 0
        pages[-1].append(Tile(job.owner, job.crop, job.scale, x, y, w, h))
        x += w + gap_px
        row_height = max(row_height, h)
    by_owner = {job.owner: job.image for job in jobs}
    return [_draw(tiles, by_owner, width) for tiles in pages if tiles]


def _draw(tiles: list[Tile], images: dict[int, np.ndarray], width: int) -> Canvas:
    used = max(t.y + t.height for t in tiles)
    height = min(width, -(-used // _STRIDE) * _STRIDE)
    canvas = blank_canvas(height, width)
    for tile in tiles:
        crop = tile.crop
        piece = images[tile.owner][int(crop.y1):int(crop.y2), int(crop.x1):int(crop.x2)]
        if piece.shape[1] != tile.width or piece.shape[0] != tile.height:
            piece = cv2.resize(piece, (tile.width, tile.height), interpolation=cv2.INTER_AREA)
        canvas[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width] = piece
    return Canvas(canvas, tuple(tiles))


def unpack(canvas: Canvas, found: Sequence[Detection]) -> dict[int, list[Detection]]:
    """Hand each detection on ``canvas`` back to its frame, in that frame's pixels.

    A detection belongs to the tile holding its centre and is clipped to that tile; one whose
    centre lies in a gap is padding, not a person, and is dropped.
    """
    result: dict[int, list[Detection]] = {}
    for detection in found:
        box = detection.box
        cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
        for tile in canvas.tiles:
            if tile.x <= cx < tile.x + tile.width and tile.y <= cy < tile.y + tile.height:
                x1 = max(box.x1, tile.x) - tile.x
                y1 = max(box.y1, tile.y) - tile.y
                x2 = min(box.x2, tile.x + tile.width) - tile.x
                y2 = min(box.y2, tile.y + tile.height) - tile.y
                crop = tile.crop
                # The tile's size was rounded to whole pixels: clip to the crop again, or a box
                # on the frame's edge would end a fraction of a pixel outside the frame.
                mapped = Box(crop.x1 + x1 / tile.scale, crop.y1 + y1 / tile.scale,
                             min(crop.x2, crop.x1 + x2 / tile.scale),
                             min(crop.y2, crop.y1 + y2 / tile.scale))
                result.setdefault(tile.owner, []).append(
                    Detection(mapped, detection.score, detection.label, detection.class_name)
                )
                break
    return result
