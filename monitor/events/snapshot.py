"""Event snapshots: one JPEG per event, the frame with the event's box drawn."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2

from monitor.types import Event, Frame

log = logging.getLogger(__name__)

_BOX_COLOUR = (0, 0, 255)  # BGR red: readable on grass, pavement and night IR alike


class SnapshotWriter:
    """Writes ``<root>/<camera>/<event id>.jpg``.

    Args:
        root: the snapshot directory (created when missing).
        quality: JPEG quality 10..100.
    """

    def __init__(self, root: Path, quality: int) -> None:
        self._root = root
        self._quality = quality

    def path_for(self, camera: str, event_id: str) -> str:
        return str(self._root / camera / f"{event_id}.jpg")

    def write(self, frame: Frame, event: Event) -> bool:
        """Draw the event's box on a copy of the frame and save it; False (logged) on failure.

        A snapshot is a convenience: failing to write one must never lose the event itself.
        """
        if event.snapshot is None:
            return False
        image = frame.image.copy()
        box = event.box
        top_left = (int(box.x1), int(box.y1))
        cv2.rectangle(image, top_left, (int(box.x2), int(box.y2)), _BOX_COLOUR, 2)
        caption = f"{event.kind.value} {event.label} {event.score:.2f}"
        cv2.putText(
            image,
            caption,
            (top_left[0], max(12, top_left[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            _BOX_COLOUR,
            1,
            cv2.LINE_AA,
        )
        path = Path(event.snapshot)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            if not ok:
                raise OSError("JPEG encoding failed")
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data.tobytes())
            os.replace(tmp, path)  # readers never see a half-written file
        except OSError as exc:
            log.warning("cannot write snapshot %s: %s", path, exc)
            return False
        return True
