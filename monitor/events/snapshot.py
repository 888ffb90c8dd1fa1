"""Event snapshots: one JPEG per event, the frame with the event's box drawn."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from monitor.types import Event, Frame

log = logging.getLogger(__name__)

_BOX_COLOUR = (0, 0, 255)  # BGR red: readable on grass, pavement and night IR alike


class SnapshotWriter:
    """Writes ``<root>/<camera>/<event id>.jpg``.

    A full disk (or a read-only, unmounted or vanished folder) is an outage, not one error per
    event: the first failure is one warning, the ones after it are quiet, and the first write
    that works again says how many were skipped. A failed write leaves no file behind.

    Args:
        root: the snapshot directory (created when missing).
        quality: JPEG quality 10..100.
        on_drawn: called with (camera, the picture with its box) of every snapshot, written to
            disk or not (the retained ``{prefix}/{camera}/snapshot`` topic); must not block.
    """

    def __init__(
        self, root: Path, quality: int,
        on_drawn: Callable[[str, np.ndarray], None] | None = None,
    ) -> None:
        self._root = root
        self._quality = quality
        self._on_drawn = on_drawn
        self._lock = threading.Lock()  # one writer is shared by every camera's pipeline
        self._failed_in_a_row = 0

    def path_for(self, camera: str, event_id: str) -> str:
        return str(self._root / camera / f"{event_id}.jpg")

    def write(self, frame: Frame, event: Event) -> bool:
        """Draw the event's box on a copy of the frame and save it; False on failure.

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
        tmp = path.with_suffix(".tmp")
        try:
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            if not ok:
                raise OSError("JPEG encoding failed")
            jpeg = data.tobytes()
            if self._on_drawn is not None:
                self._on_drawn(event.camera, image)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(jpeg)
            os.replace(tmp, path)  # readers never see a half-written file
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # a full disk left it empty or cut short
            self._failed(path, exc)
            return False
        self._succeeded()
        return True

    def _failed(self, path: Path, exc: OSError) -> None:
        with self._lock:
            self._failed_in_a_row += 1
            first = self._failed_in_a_row == 1
        if first:
            log.warning("cannot write snapshot %s: %s; events are recorded without snapshots "
                        "until writing works again", path, exc.strerror or exc)
        else:
            log.debug("cannot write snapshot %s: %s", path, exc)

    def _succeeded(self) -> None:
        with self._lock:
            skipped, self._failed_in_a_row = self._failed_in_a_row, 0
        if skipped:
            log.info("snapshots are written again (%d event(s) recorded without one)", skipped)
