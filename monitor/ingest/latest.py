"""Newest-frame hand-off between one capture thread and the inference worker.

A camera produces frames at its own rate; the detector consumes them at whatever rate it can.
Queueing would only add latency, so the hand-off holds one frame: a new frame replaces an
unconsumed one, and the replaced frame is counted as dropped.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from monitor.ingest.motion import combine
from monitor.types import Frame


class LatestFrame:
    """A slot of size 1 holding the newest frame not yet taken.

    One capture thread calls ``put``; one consumer calls ``take``. Both are thread-safe and never
    block beyond a short lock. Frames are handed over as they are, never copied.

    Args:
        on_put: called after every ``put``, outside the lock. The inference worker passes the
            ``set`` of one ``threading.Event`` shared by all cameras, so one thread can wait on
            many slots.

    Example:
        >>> wake = threading.Event()
        >>> slot = LatestFrame(on_put=wake.set)
    """

    def __init__(self, on_put: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._dropped = 0
        self._on_put = on_put

    def put(self, frame: Frame) -> None:
        """Offer the newest frame; an unconsumed older frame is replaced and counted as dropped.

        What moved in the replaced frame is carried into the new one: the detector must still
        look there even though it never saw that frame.
        """
        with self._lock:
            if self._frame is not None:
                self._dropped += 1
                moved = combine(self._frame.motion, frame.motion, first=False)
                if moved != frame.motion:  # copy only when there is something to carry
                    frame = dataclasses.replace(frame, motion=moved)
            self._frame = frame
        if self._on_put is not None:
            self._on_put()

    def take(self) -> Frame | None:
        """The newest unconsumed frame, or None if there is none; empties the slot. Never blocks."""
        with self._lock:
            frame, self._frame = self._frame, None
        return frame

    @property
    def dropped(self) -> int:
        """Frames replaced before anyone took them, since construction."""
        with self._lock:
            return self._dropped
