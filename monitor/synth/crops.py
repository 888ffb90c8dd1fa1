"""Real people cut out of the footage: detector boxes -> clean, isolated, masked person crops.

A crop is only as good as its mask, so boxes are filtered hard before cutting: confident, well
inside the frame, of a plausible size and far from any other box (a neighbour's arm in the mask
would be pasted along). The mask is what differs from the median background; crops whose mask
covers too little or too much of the box (a person wearing the colour of the lawn, two people in
one box) are dropped.

The same detections also give the camera's perspective: a person's box height grows linearly
with the image row of their feet, which is what makes pasted people the right size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from monitor.types import Box

Detect = Callable[[np.ndarray], list[tuple[float, float, float, float, float]]]
"""A person detector: BGR image (H, W, 3) -> [(x1, y1, x2, y2, score)] in pixels."""


class CropError(Exception):
    """The footage yields too few usable people; ``str()`` says what was missing."""


@dataclass(frozen=True, slots=True)
class CropSettings:
    """How person crops are chosen and masked.

    Attributes:
        sample_frames: frames, spread over the footage, the detector is run on.
        min_score: boxes below are not cut (nor used for the perspective fit). The default fall
            model rarely scores vtest's small people above 0.7, so 0.55 keeps enough of them.
        edge_margin_px: a box must stay this far from the frame border (a cut-off person).
        height_px: (min, max) box height; smaller people are too blurry once scaled up.
        max_aspect: box width / height above this is a group or a partial person.
        spacing_px: gap every kept box keeps from every other box of the frame.
        diff_threshold: colour distance (Euclidean, BGR 0..255) from the background above
            which a pixel is foreground.
        blur_px: Gaussian kernel (odd) applied to frame and background before the difference,
            so sensor noise and compression blocks do not become foreground.
        open_px: opening kernel: removes specks and the thin streaks a slightly shaking camera
            leaves along high-contrast edges (tape, kerbs).
        close_px: closing kernel: joins limbs split by background-coloured clothing.
        keep_component_frac: besides the largest foreground component, keep those at least this
            fraction of its area (a foot separated from the leg).
        fill_range: (min, max) mask area / box area accepted.
        min_mask_height_frac: the mask must span this fraction of the box height (else only a
            torso or only legs differ from the background).
        max_border_frac: fraction of the crop's top, left and right border pixels the mask may
            touch; more means the foreground goes on outside the crop (an undetected neighbour).
        max_occluder_frac: inside the mask, a single pixel column that looks like background
            over this fraction of the mask height is something thin in front of the person (a
            lamp post): pasted elsewhere it would travel along with them.
        feather_px: Gaussian sigma of the mask edge, so a pasted crop shows no hard outline.
        pad_px: pixels cut around the box, room for the feathered edge.
        min_crops: fewer usable crops than this is an error.
        min_perspective_boxes: fewer boxes than this cannot fit the perspective.
        outlier_mad: perspective fit drops boxes whose residual exceeds this many median
            absolute deviations (sitting people, detector boxes around two people).
        static_iou: a detection overlapping a box found in the empty background by this IoU
            is that static object, not a person.
    """

    sample_frames: int = 60
    min_score: float = 0.55
    edge_margin_px: float = 10.0
    height_px: tuple[float, float] = (60.0, 320.0)
    max_aspect: float = 0.8
    spacing_px: float = 16.0
    diff_threshold: float = 30.0
    blur_px: int = 5
    open_px: int = 5
    close_px: int = 9
    keep_component_frac: float = 0.15
    fill_range: tuple[float, float] = (0.3, 0.85)
    min_mask_height_frac: float = 0.85
    max_border_frac: float = 0.04
    max_occluder_frac: float = 0.35
    feather_px: float = 1.2
    pad_px: int = 6
    min_crops: int = 3
    min_perspective_boxes: int = 6
    outlier_mad: float = 3.0
    static_iou: float = 0.5

    def __post_init__(self) -> None:
        _check(self.sample_frames >= 1, "sample_frames", "at least 1", self.sample_frames)
        _check(0.0 <= self.min_score <= 1.0, "min_score", "in 0..1", self.min_score)
        _check(0 < self.height_px[0] < self.height_px[1], "height_px", "0 < min < max",
               self.height_px)
        _check(self.blur_px % 2 == 1, "blur_px", "odd", self.blur_px)
        _check(0.0 <= self.fill_range[0] < self.fill_range[1] <= 1.0, "fill_range",
               "0 <= min < max <= 1", self.fill_range)
        _check(self.pad_px >= 0, "pad_px", ">= 0", self.pad_px)


def _check(ok: bool, name: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ScoredBox:
    box: Box
    score: float


@dataclass(frozen=True, slots=True)
class PersonCrop:
    """One person cut out of one footage frame.

    Attributes:
        image: BGR uint8 (h, w, 3): the box plus ``pad_px`` around it.
        alpha: float32 (h, w) in 0..1: the feathered person mask.
        foot: (x, y) in crop pixels: bottom-centre of the mask, where the person stands.
        height_px: mask height in source pixels (the person's height as the detector saw it).
        hull: float32 (k, 2): convex hull of the mask in crop pixels; transformed with the crop
            it gives the exact box of the pasted person.
        source_frame: footage frame index the crop comes from.
        score: detector score of the source box.
    """

    image: np.ndarray
    alpha: np.ndarray
    foot: tuple[float, float]
    height_px: float
    hull: np.ndarray
    source_frame: int
    score: float

    @property
    def aspect(self) -> float:
        """Mask width / height."""
        width = float(self.hull[:, 0].max() - self.hull[:, 0].min())
        return width / self.height_px


@dataclass(frozen=True, slots=True)
class Perspective:
    """A standing person's box height in pixels as a linear function of their foot row."""

    slope: float
    intercept: float

    def height_at(self, foot_y: float | np.ndarray) -> np.ndarray:
        return np.asarray(self.slope * np.asarray(foot_y, dtype=np.float64) + self.intercept)


@dataclass(frozen=True, slots=True)
class CropHarvest:
    """What the footage gave: usable crops, the perspective, and why the other boxes were dropped."""

    crops: tuple[PersonCrop, ...]
    perspective: Perspective
    rejected: tuple[tuple[str, int], ...]


def select_boxes(
    boxes: Sequence[ScoredBox], width: int, height: int, settings: CropSettings,
    others: Sequence[ScoredBox] = (),
) -> tuple[list[ScoredBox], Counter[str]]:
    """Keep the boxes worth cutting: confident, inside, plausible and isolated.

    Args:
        boxes: the candidate detections of one frame, weak ones included (they still count as
            neighbours).
        width, height: frame size in pixels.
        settings: thresholds.
        others: more boxes of the frame that only count as neighbours (static objects).

    Returns:
        The kept boxes, and a count of rejections by reason.
    """
    kept: list[ScoredBox] = []
    reasons: Counter[str] = Counter()
    margin = settings.edge_margin_px
    for i, item in enumerate(boxes):
        b = item.box
        box_h, box_w = b.y2 - b.y1, b.x2 - b.x1
        if item.score < settings.min_score:
            reasons["score"] += 1
        elif b.x1 < margin or b.y1 < margin or b.x2 > width - margin or b.y2 > height - margin:
            reasons["edge"] += 1
        elif not settings.height_px[0] <= box_h <= settings.height_px[1]:
            reasons["size"] += 1
        elif box_w > settings.max_aspect * box_h:
            reasons["aspect"] += 1
        elif any(_near(b, other.box, settings.spacing_px)
                 for j, other in enumerate([*boxes, *others]) if j != i):
            reasons["neighbour"] += 1
        else:
            kept.append(item)
    return kept, reasons


def _near(a: Box, b: Box, gap: float) -> bool:
    """Whether two boxes come closer than ``gap`` pixels (overlapping included)."""
    return a.x1 - gap < b.x2 and b.x1 - gap < a.x2 and a.y1 - gap < b.y2 and b.y1 - gap < a.y2


def foreground_mask(
    image: np.ndarray, background: np.ndarray, settings: CropSettings
) -> np.ndarray:
    """Pixels of ``image`` that are not background, cleaned: uint8 (H, W), 255 = foreground."""
    mask = np.where(raw_difference(image, background, settings), 255, 0).astype(np.uint8)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.open_px, settings.open_px))
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.close_px, settings.close_px))
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, opening)
    return np.asarray(cv2.morphologyEx(opened, cv2.MORPH_CLOSE, closing), dtype=np.uint8)


def raw_difference(image: np.ndarray, background: np.ndarray, settings: CropSettings) -> np.ndarray:
    """Pixels differing from the background by more than the threshold: bool (H, W)."""
    k = (settings.blur_px, settings.blur_px)
    diff = cv2.GaussianBlur(image, k, 0).astype(np.float32) - cv2.GaussianBlur(background, k, 0)
    return np.asarray(np.sqrt((diff * diff).sum(axis=2)) > settings.diff_threshold)


def _person_mask(mask: np.ndarray, settings: CropSettings) -> np.ndarray:
    """The largest component (and big companions), holes filled: uint8 0/255."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= settings.keep_component_frac * areas.max())
    person = np.where(np.isin(labels, keep), 255, 0).astype(np.uint8)
    contours, _ = cv2.findContours(person, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(person)
    cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
    return filled


def cut_crop(
    image: np.ndarray,
    background: np.ndarray,
    item: ScoredBox,
    frame_index: int,
    settings: CropSettings,
) -> PersonCrop | str:
    """Cut one person out of a frame.

    Args:
        image, background: BGR uint8 (H, W, 3) frame and the clean background.
        item: the person's box (already checked by ``select_boxes``).
        frame_index: recorded in the crop.
        settings: mask thresholds.

    Returns:
        The crop, or the reason it was rejected (``"fill"``, ``"border"``, ``"occluded"``, ``"height"``).
    """
    b, pad = item.box, settings.pad_px
    frame_h, frame_w = image.shape[:2]
    x0, y0 = max(0, int(b.x1) - pad), max(0, int(b.y1) - pad)
    x1, y1 = min(frame_w, int(np.ceil(b.x2)) + pad), min(frame_h, int(np.ceil(b.y2)) + pad)
    patch, plate = image[y0:y1, x0:x1], background[y0:y1, x0:x1]
    mask = _person_mask(foreground_mask(patch, plate, settings), settings)
    ys, xs = np.nonzero(mask)
    box_area = (b.x2 - b.x1) * (b.y2 - b.y1)
    fill = len(xs) / box_area
    if not settings.fill_range[0] <= fill <= settings.fill_range[1]:
        return "fill"
    border = np.concatenate([mask[0, :], mask[:, 0], mask[:, -1]])
    if np.count_nonzero(border) > settings.max_border_frac * border.size:
        return "border"
    mask_h = float(ys.max() - ys.min() + 1)
    hidden = (mask > 0) & ~raw_difference(patch, plate, settings)
    if hidden.sum(axis=0).max() > settings.max_occluder_frac * mask_h:
        return "occluded"
    if mask_h < settings.min_mask_height_frac * (b.y2 - b.y1):
        return "height"
    # Feather inwards: erode first, so the soft edge fades into the person, not into a halo of
    # the source frame's background.
    eroded = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    alpha = cv2.GaussianBlur(eroded.astype(np.float32) / 255.0, (0, 0), settings.feather_px)
    points = np.column_stack([xs, ys]).astype(np.float32)
    hull = cv2.convexHull(points).reshape(-1, 2)  # pixel centres, as cv2.warpAffine maps them
    foot = (float(xs.min() + xs.max()) / 2.0, float(ys.max()) + 0.5)  # lowest pixel's bottom edge
    return PersonCrop(
        image=patch.copy(),
        alpha=alpha,
        foot=foot,
        height_px=mask_h,
        hull=hull,
        source_frame=frame_index,
        score=item.score,
    )


def fit_perspective(boxes: Sequence[Box], settings: CropSettings) -> Perspective:
    """Least-squares line box height = slope * foot row + intercept, refit without outliers.

    Raises:
        CropError: too few boxes, or a line that does not grow downwards.
    """
    if len(boxes) < settings.min_perspective_boxes:
        raise CropError(
            f"only {len(boxes)} confident person boxes to fit the perspective, "
            f"need {settings.min_perspective_boxes}"
        )
    foot = np.array([b.y2 for b in boxes])
    height = np.array([b.y2 - b.y1 for b in boxes])
    keep = np.ones(len(boxes), dtype=bool)
    for _ in range(2):
        slope, intercept = np.polyfit(foot[keep], height[keep], 1)
        residual = np.abs(height - (slope * foot + intercept))
        mad = float(np.median(residual[keep])) or 1.0
        keep = residual <= settings.outlier_mad * mad
    if slope <= 0:
        raise CropError(f"people do not get bigger lower in the frame (slope {slope:.3f})")
    return Perspective(float(slope), float(intercept))


def _overlaps(box: Box, others: Sequence[Box], min_iou: float) -> bool:
    for o in others:
        w = min(box.x2, o.x2) - max(box.x1, o.x1)
        h = min(box.y2, o.y2) - max(box.y1, o.y1)
        if w > 0 and h > 0:
            inter = w * h
            union = (box.x2 - box.x1) * (box.y2 - box.y1) + (o.x2 - o.x1) * (o.y2 - o.y1) - inter
            if inter >= min_iou * union:
                return True
    return False


def harvest_crops(
    frames: Mapping[int, np.ndarray],
    background: np.ndarray,
    detect: Detect,
    settings: CropSettings,
    static: Sequence[Box] = (),
) -> CropHarvest:
    """Run the detector on the sampled frames and cut every usable person out.

    Args:
        frames: footage frame index -> BGR image.
        background: the clean background of the same footage.
        detect: the person detector.
        settings: thresholds.
        static: boxes the detector finds in the empty background. Detections on them are
            things, not people: never cut, and kept out of the perspective fit (vtest's yellow
            object, boxed in every frame, would otherwise outvote the people).

    Returns:
        Crops (in frame order), the fitted perspective and the rejection counts.

    Raises:
        CropError: fewer than ``settings.min_crops`` crops.
    """
    crops: list[PersonCrop] = []
    rejected: Counter[str] = Counter()
    confident: list[Box] = []
    for index in sorted(frames):
        image = frames[index]
        height, width = image.shape[:2]
        boxes = [ScoredBox(Box(x1, y1, x2, y2), s) for x1, y1, x2, y2, s in detect(image)]
        people = [b for b in boxes if not _overlaps(b.box, static, settings.static_iou)]
        things = [b for b in boxes if b not in people]
        if things:
            rejected["static"] += len(things)
        kept, reasons = select_boxes(people, width, height, settings, things)
        rejected.update(reasons)
        confident.extend(
            b.box for b in people
            if b.score >= settings.min_score and settings.edge_margin_px <= b.box.y1
            and b.box.y2 <= height - settings.edge_margin_px
        )
        for item in kept:
            crop = cut_crop(image, background, item, index, settings)
            if isinstance(crop, str):
                rejected[crop] += 1
            else:
                crops.append(crop)
    if len(crops) < settings.min_crops:
        raise CropError(
            f"only {len(crops)} usable person crops in {len(frames)} frames "
            f"(need {settings.min_crops}); rejected: {dict(rejected)}"
        )
    return CropHarvest(tuple(crops), fit_perspective(confident, settings),
                       tuple(sorted(rejected.items())))
