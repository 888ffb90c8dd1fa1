"""The scene material cut from the footage once: background, person crops, perspective, obstacles.

Building it costs a pass of the detector over tens of frames, so it is cached next to the
clips, keyed by the footage file (path, size, modification time) and the settings that shape it.
The detector is not part of the key: delete the cache folder after changing the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from monitor.synth.background import median_background
from monitor.synth.crops import Detect, Perspective, PersonCrop, harvest_crops
from monitor.synth.settings import SynthSettings
from monitor.synth.video import count_frames, read_frames, spread_indices
from monitor.types import Box

CACHE_VERSION = 2  # bump when the cached layout or the way crops are cut changes


@dataclass(frozen=True, slots=True)
class SceneAssets:
    """Everything composition needs from the footage.

    Attributes:
        background: BGR uint8 (H, W, 3) empty scene.
        crops: usable person crops.
        perspective: standing person height from the foot row.
        obstacles: boxes the detector finds in the empty scene (static look-alikes).
        rejected: (reason, count) of the detector boxes not cut.
    """

    background: np.ndarray
    crops: tuple[PersonCrop, ...]
    perspective: Perspective
    obstacles: tuple[Box, ...]
    rejected: tuple[tuple[str, int], ...]

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.background.shape[1]), int(self.background.shape[0])


def cache_key(footage: Path, settings: SynthSettings) -> str:
    """A short hash of the footage file's identity and the settings that shape the assets."""
    stat = footage.stat()
    identity = {
        "version": CACHE_VERSION,
        "footage": str(footage.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "background_frames": settings.background_frames,
        "crops": dataclasses.asdict(settings.crops),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def build_assets(
    footage: Path, detect: Detect, settings: SynthSettings, progress: Callable[[str], None]
) -> SceneAssets:
    """Read the footage, take the median background and harvest person crops."""
    total = count_frames(footage)
    frames = read_frames(footage, spread_indices(total, settings.background_frames))
    background = median_background(list(frames.values()))
    progress(f"background: median of {len(frames)} of {total} frames")
    obstacles = tuple(Box(x1, y1, x2, y2) for x1, y1, x2, y2, _ in detect(background))
    sampled = read_frames(footage, spread_indices(total, settings.crops.sample_frames))
    harvest = harvest_crops(sampled, background, detect, settings.crops, obstacles)
    progress(f"crops: {len(harvest.crops)} people from {len(sampled)} frames "
             f"(rejected: {dict(harvest.rejected)}); {len(obstacles)} static look-alikes")
    return SceneAssets(background, harvest.crops, harvest.perspective, obstacles, harvest.rejected)


def save_assets(assets: SceneAssets, folder: Path, key: str) -> None:
    """Write ``background-<key>.png`` and ``crops-<key>.npz`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"background-{key}.png"), assets.background)
    # Any: numpy's stub types **kwds so that a dict of arrays could land on allow_pickle: bool.
    arrays: dict[str, Any] = {
        "foot": np.array([c.foot for c in assets.crops]),
        "height_px": np.array([c.height_px for c in assets.crops]),
        "source_frame": np.array([c.source_frame for c in assets.crops]),
        "score": np.array([c.score for c in assets.crops]),
        "perspective": np.array([assets.perspective.slope, assets.perspective.intercept]),
        "obstacles": np.array([[o.x1, o.y1, o.x2, o.y2] for o in assets.obstacles]).reshape(-1, 4),
        "rejected": np.array(json.dumps(assets.rejected)),
    }
    for i, crop in enumerate(assets.crops):
        arrays[f"image_{i}"], arrays[f"alpha_{i}"], arrays[f"hull_{i}"] = crop.image, crop.alpha, crop.hull
    temporary = folder / f"crops-{key}.tmp.npz"
    np.savez_compressed(temporary, **arrays)
    temporary.replace(folder / f"crops-{key}.npz")  # a half-written cache is never read


def load_assets(folder: Path, key: str) -> SceneAssets | None:
    """The cached assets for ``key``, or None when there are none."""
    picture, bundle = folder / f"background-{key}.png", folder / f"crops-{key}.npz"
    if not (picture.is_file() and bundle.is_file()):
        return None
    background = cv2.imread(str(picture), cv2.IMREAD_COLOR)
    if background is None:
        return None  # unreadable: rebuilt and overwritten by the caller
    with np.load(bundle, allow_pickle=False) as data:
        crops = tuple(
            PersonCrop(
                image=data[f"image_{i}"], alpha=data[f"alpha_{i}"],
                foot=(float(data["foot"][i][0]), float(data["foot"][i][1])),
                height_px=float(data["height_px"][i]), hull=data[f"hull_{i}"],
                source_frame=int(data["source_frame"][i]), score=float(data["score"][i]),
            )
            for i in range(len(data["height_px"]))
        )
        slope, intercept = (float(v) for v in data["perspective"])
        obstacles = tuple(Box(*(float(v) for v in row)) for row in data["obstacles"])
        rejected = tuple((str(r), int(n)) for r, n in json.loads(str(data["rejected"])))
    return SceneAssets(background, crops, Perspective(slope, intercept), obstacles, rejected)


def load_or_build(
    footage: Path, cache_dir: Path, detect: Detect, settings: SynthSettings,
    progress: Callable[[str], None],
) -> SceneAssets:
    """Cached assets for this footage and these settings, built (and cached) when missing."""
    key = cache_key(footage, settings)
    cached = load_assets(cache_dir, key)
    if cached is not None:
        progress(f"assets: {len(cached.crops)} crops from the cache ({cache_dir}, key {key})")
        return cached
    assets = build_assets(footage, detect, settings, progress)
    save_assets(assets, cache_dir, key)
    return assets
