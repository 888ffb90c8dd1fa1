"""Review items: one per period of activity on a camera, grouping the events inside it.

A person crossing a camera makes a presence event, an intrusion, perhaps a loitering; eight people
make eight of each. A subscriber that wants one notification per incident reads reviews instead:
a review opens with the first announced event on a quiet camera, every announced event that
starts while it is open joins it, and it ends ``gap_s`` after its last event ended (or after
``max_duration_s``, when events still open start the next one). Its severity is ``alert`` once an
event of ``alert_kinds`` (in ``alert_zones``, if set) joins, ``detection`` until then; it never
goes back down.

Pure logic, like the event lifecycle: time comes from the alerts and from ``advance(now)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from monitor.config import ReviewsConfig
from monitor.types import (
    Alert, AlertType, Event, Review, ReviewChange, ReviewMessage, Severity, kinds_where,
)

_ZONE_KINDS = frozenset(kinds_where(zone_event=True))


def _append(values: tuple[str, ...], *more: str | None) -> tuple[str, ...]:
    out = list(values)
    for value in more:
        if value is not None and value not in out:
            out.append(value)
    return tuple(out)


class ReviewTracker:
    """One camera's review items.

    Args:
        camera: camera name.
        config: the ``[reviews]`` section.
        new_id: makes review ids (UUID4 text by default).
    """

    def __init__(
        self,
        camera: str,
        config: ReviewsConfig,
        *,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._camera = camera
        self._config = config
        self._new_id = new_id
        self._review: Review | None = None
        self._open: dict[str, Event] = {}  # its events still open, by id
        self._last_end: datetime | None = None  # newest end among its ended events
        self._last_event = ""  # id of the event that last changed it

    @property
    def current(self) -> Review | None:
        return self._review

    def alert_worthy(self, event: Event) -> bool:
        if event.kind.value not in self._config.alert_kinds:
            return False
        zones = self._config.alert_zones
        return not zones or event.kind.value not in _ZONE_KINDS or event.zone in zones

    def observe(self, alert: Alert) -> list[ReviewMessage]:
        """Take one alert of the camera (unannounced ones are ignored)."""
        event = alert.event
        if not event.announced:
            return []
        if alert.record_only:  # no change to tell, but it says the object is still there
            if event.id in self._open:
                self._open[event.id] = event
            return []
        if alert.type is AlertType.END:
            if self._open.pop(event.id, None) is not None and event.end_time is not None:
                self._last_end = max(self._last_end or event.end_time, event.end_time)
            return []
        if alert.type is AlertType.UPDATE and event.id not in self._open:
            return []
        # A quiet gap may have run out since the last frame: end that review first.
        messages = self.advance(event.seen_at or event.start_time)
        return messages + self._join(event)

    def _join(self, event: Event) -> list[ReviewMessage]:
        self._open[event.id] = event
        self._last_event = event.id
        review = self._review
        if review is None:
            self._review = self._with(self._empty(event.start_time), event)
            self._last_end = None
            return [ReviewMessage(ReviewChange.NEW, self._review, event.id)]
        changed = self._with(review, event)
        if changed == review:
            return []
        self._review = replace(changed, seq=review.seq + 1)
        return [ReviewMessage(ReviewChange.UPDATE, self._review, event.id)]

    def advance(self, now: datetime) -> list[ReviewMessage]:
        """End the review once quiet for ``gap_s``, or once ``max_duration_s`` long."""
        review = self._review
        if review is None:
            return []
        if not self._open and self._last_end is not None:
            if now - self._last_end >= timedelta(seconds=self._config.gap_s):
                return [self._end(self._last_end)]
            return []
        if now - review.start_time < timedelta(seconds=self._config.max_duration_s):
            return []
        still_open = list(self._open.values())
        messages = [self._end(now)]
        # Events seen lately carry on in the next review; one whose object has gone (its end is
        # only due after end_after_s) must not open a review of its own.
        recent = timedelta(seconds=self._config.carry_within_s)
        still_open = [e for e in still_open if now - (e.seen_at or e.start_time) <= recent]
        if still_open:
            self._review = self._empty(now)
            for event in still_open:
                self._review = self._with(self._review, event)
            self._open = {e.id: e for e in still_open}
            messages.append(ReviewMessage(ReviewChange.NEW, self._review, self._last_event))
        return messages

    def close(self) -> list[ReviewMessage]:
        """End the open review now (shutdown, after the events were ended)."""
        review = self._review
        if review is None:
            return []
        ends = [e.seen_at or e.start_time for e in self._open.values()]
        if self._last_end is not None:
            ends.append(self._last_end)
        return [self._end(max(ends, default=review.start_time))]

    def _empty(self, start: datetime) -> Review:
        return Review(
            id=self._new_id(), camera=self._camera, start_time=start, end_time=None,
            severity=Severity.DETECTION, event_ids=(), kinds=(), labels=(), zones=(), seq=1,
        )

    def _with(self, review: Review, event: Event) -> Review:
        severity = review.severity
        if self.alert_worthy(event):
            severity = Severity.ALERT
        return replace(
            review,
            severity=severity,
            event_ids=_append(review.event_ids, event.id),
            kinds=_append(review.kinds, event.kind.value),
            labels=_append(review.labels, event.label),
            zones=_append(review.zones, event.zone, *event.zones),
        )

    def _end(self, at: datetime) -> ReviewMessage:
        review = self._review
        assert review is not None
        ended = replace(review, end_time=max(at, review.start_time), seq=review.seq + 1)
        self._review = None
        self._open = {}
        self._last_end = None
        cause = self._last_event or (review.event_ids[-1] if review.event_ids else "")
        return ReviewMessage(ReviewChange.END, ended, cause)
