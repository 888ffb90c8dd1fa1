"""When each event's clip is due, and what time span it covers: pure, no threads or I/O.

An announced event's START opens a window from ``start - pre_roll_s``; its END closes it at
``end + post_roll_s``. The clip is due once that moment has passed (the post-roll has been
filmed), or once the window reached ``max_length_s`` while the event is still open (a long event
gets its clip then, cut at that length, and nothing more).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.types import Alert, AlertType, Event


@dataclass(frozen=True, slots=True)
class ClipWindow:
    """The span of footage one event's clip covers.

    Attributes:
        event: the event as last heard of (its END once it ended).
        start: footage time the clip begins at (the event's start minus the pre-roll).
        end: footage time it ends at: the event's end plus the post-roll, or the length cap.
    """

    event: Event
    start: datetime
    end: datetime


class ClipSchedule:
    """The windows of one daemon's events whose clips are not written yet.

    Args:
        pre_roll_s: footage before an event's start.
        post_roll_s: footage after its end.
        max_length_s: longest clip.
        capacity: most windows at once; a START beyond it gets no clip.
    """

    def __init__(self, pre_roll_s: float, post_roll_s: float, max_length_s: float,
                 capacity: int) -> None:
        self._pre = timedelta(seconds=pre_roll_s)
        self._post = timedelta(seconds=post_roll_s)
        self._max = timedelta(seconds=max_length_s)
        self._capacity = capacity
        self._windows: dict[str, ClipWindow] = {}

    def opens(self, alert: Alert) -> bool:
        """True for the first alert heard of an announced event: a START, or the START of a
        stationary record that became an event (its seq 2)."""
        event = alert.event
        return (alert.type is AlertType.START and event.announced
                and event.id not in self._windows)

    def open(self, event: Event) -> ClipWindow | None:
        """Open the event's window; None when ``capacity`` windows are pending (no clip)."""
        if len(self._windows) >= self._capacity:
            return None
        start = event.start_time - self._pre
        window = ClipWindow(event, start, start + self._max)
        self._windows[event.id] = window
        return window

    def update(self, event: Event) -> None:
        """A later state of a pending event (ignored for any other): its end closes the window."""
        window = self._windows.get(event.id)
        if window is None:
            return
        end = window.end
        if event.end_time is not None:
            end = min(event.end_time + self._post, window.start + self._max)
        self._windows[event.id] = dataclasses.replace(window, event=event, end=end)

    def due(self, now: datetime) -> list[ClipWindow]:
        """Take the windows whose end has passed (footage time ``now``), oldest end first."""
        ready = sorted((w for w in self._windows.values() if w.end <= now), key=lambda w: w.end)
        for window in ready:
            del self._windows[window.event.id]
        return ready

    def take_all(self, now: datetime) -> list[ClipWindow]:
        """Take every window, each ending at ``now`` at the latest (the daemon stops: no more
        footage comes): ended events first (a short stop budget is spent on finished clips),
        oldest end first."""
        windows = sorted((dataclasses.replace(w, end=min(w.end, now))
                          for w in self._windows.values()),
                         key=lambda w: (w.event.end_time is None, w.end))
        self._windows.clear()
        return windows

    def pending_for(self, camera: str) -> int:
        """How many of the pending windows are of ``camera``'s events."""
        return sum(w.event.camera == camera for w in self._windows.values())

    def next_due(self) -> datetime | None:
        """The earliest end among the pending windows (None: none pending)."""
        return min((w.end for w in self._windows.values()), default=None)

    def __len__(self) -> int:
        return len(self._windows)
