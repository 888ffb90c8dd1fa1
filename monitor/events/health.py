"""Camera health: each camera's online/offline status, and an event while one stays offline.

A camera is ``online`` while its capture thread is streaming frames; connecting, backing off
after a failure, a file that ended: ``offline``. The status is published retained on
``{prefix}/{camera}/status`` (Home Assistant's camera status sensor reads it).
A camera offline for longer than ``[source] offline_event_s`` gets a ``camera_offline`` event,
recorded and alerted through the outbox like any other, starting when the camera went offline
and ending when frames come back (``back_online``) or at shutdown. Short reconnects (an RTSP
server restarting) only flip the status.

Pure logic: the daemon feeds it the sources' states and emits what it returns.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from monitor.types import Alert, AlertType, Box, EndReason, Event, EventKind

CameraStatus = Literal["online", "offline"]

# The label of an event about the camera itself rather than an object in its picture.
CAMERA_LABEL = "camera"


@dataclass(frozen=True, slots=True)
class HealthUpdate:
    """What changed at one check.

    Attributes:
        statuses: camera -> its new status, for the cameras whose status changed.
        alerts: the ``camera_offline`` events' START and END alerts.
    """

    statuses: dict[str, CameraStatus]
    alerts: list[Alert]


@dataclass(slots=True)
class _Camera:
    status: CameraStatus | None = None  # None: not reported yet
    offline_since: tuple[float, datetime] | None = None  # monotonic, wall
    event: Event | None = None


class CameraHealth:
    """Tracks every camera's status between checks.

    Args:
        offline_event_s: how long a camera must stay offline before its event starts.
        new_id: event id factory (tests pass a deterministic one).
    """

    def __init__(
        self, offline_event_s: float, new_id: Callable[[], str] = lambda: str(uuid.uuid4())
    ) -> None:
        self._offline_event_s = offline_event_s
        self._new_id = new_id
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()  # statuses() is read by scrapes and the stats thread

    def check(self, streaming: Mapping[str, bool], now: float, wall: datetime) -> HealthUpdate:
        """Take every watched camera's state.

        Args:
            streaming: camera -> its capture thread is streaming frames now. A camera missing
                here is no longer watched (a reload removed it): its open event ends.
            now: monotonic seconds.
            wall: the same moment in UTC.
        """
        with self._lock:
            return self._check(streaming, now, wall)

    def _check(self, streaming: Mapping[str, bool], now: float, wall: datetime) -> HealthUpdate:
        statuses: dict[str, CameraStatus] = {}
        alerts: list[Alert] = []
        for name in [n for n in self._cameras if n not in streaming]:
            gone = self._cameras.pop(name)
            if gone.event is not None:
                alerts.append(self._end(gone.event, wall, EndReason.SHUTDOWN))
        for name, is_streaming in streaming.items():
            camera = self._cameras.setdefault(name, _Camera())
            status: CameraStatus = "online" if is_streaming else "offline"
            if status != camera.status:
                camera.status = status
                statuses[name] = status
                camera.offline_since = None if is_streaming else (now, wall)
                if is_streaming and camera.event is not None:
                    alerts.append(self._end(camera.event, wall, EndReason.BACK_ONLINE))
                    camera.event = None
            if camera.offline_since is not None and camera.event is None:
                since, since_wall = camera.offline_since
                if now - since >= self._offline_event_s:
                    camera.event = self._start(name, since_wall, wall)
                    alerts.append(Alert(AlertType.START, camera.event))
        return HealthUpdate(statuses, alerts)

    def end_all(self, wall: datetime) -> list[Alert]:
        """END alerts for every open offline event (the daemon is stopping)."""
        with self._lock:
            alerts = [self._end(c.event, wall, EndReason.SHUTDOWN)
                      for c in self._cameras.values() if c.event is not None]
            for camera in self._cameras.values():
                camera.event = None
            return alerts

    def statuses(self) -> dict[str, CameraStatus]:
        """Every camera's current status (any thread)."""
        with self._lock:
            return {n: c.status for n, c in self._cameras.items() if c.status is not None}

    def _start(self, camera: str, since: datetime, wall: datetime) -> Event:
        return Event(
            id=self._new_id(), camera=camera, kind=EventKind.CAMERA_OFFLINE,
            label=CAMERA_LABEL, track_id=None, start_time=since, end_time=None, score=0.0,
            box=Box(0.0, 0.0, 0.0, 0.0), seq=1, seen_at=wall,
            evidence={"offline_event_s": self._offline_event_s},
        )

    @staticmethod
    def _end(event: Event, wall: datetime, reason: EndReason) -> Alert:
        offline_s = max(0.0, (wall - event.start_time) / timedelta(seconds=1))
        return Alert(AlertType.END, replace(
            event, end_time=wall, end_reason=reason, seq=event.seq + 1, seen_at=wall,
            evidence={**event.evidence, "offline_s": round(offline_s, 1)},
        ))
