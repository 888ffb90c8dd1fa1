"""Where the camera pipelines' alerts and review messages go: the store, each with its outbox
message in one transaction (``EventWriter``), so an alert is published if and only if its event
was recorded."""

from __future__ import annotations

import logging

from monitor.clips.writer import WrittenClip
from monitor.mqtt.topics import clip_payload, clip_topic, outbox_message, review_outbox_message
from monitor.store.writer import EventWriter
from monitor.types import Alert, OutboxMessage, ReviewMessage

log = logging.getLogger(__name__)


class StoreSink:
    """Every alert goes to the store together with its outbox message, in one transaction.

    While running, a full store queue blocks the pipeline (back-pressure, nothing dropped). At
    shutdown ``timeout_s`` bounds that wait, so a database that is away cannot hang the stop.
    """

    def __init__(self, writer: EventWriter, prefix: str) -> None:
        self._writer = writer
        self._prefix = prefix
        self.timeout_s: float | None = None

    def emit(self, alert: Alert) -> None:
        if not self.offer(alert, self.timeout_s):
            log.warning(
                "store queue full at shutdown: %s of event %s not recorded (the event stays open)",
                alert.type.value,
                alert.event.id,
            )

    def offer(self, alert: Alert, timeout_s: float | None) -> bool:
        """Record the alert, waiting at most ``timeout_s`` for queue room; False if there was
        none (nothing was queued: the caller may offer it again)."""
        # An unannounced event (an object that never moved) and a record-only refresh are
        # stored, never published.
        publish = alert.event.announced and not alert.record_only
        message = outbox_message(self._prefix, alert) if publish else None
        try:
            self._writer.record(alert, message, timeout_s=timeout_s)
        except TimeoutError:
            return False
        return True

    def emit_review(self, message: ReviewMessage) -> None:
        outbox = review_outbox_message(self._prefix, message)
        try:
            self._writer.record_review(message, outbox, timeout_s=self.timeout_s)
        except TimeoutError:
            log.warning(
                "store queue full at shutdown: %s of review %s not recorded",
                message.type.value, message.review.id,
            )

    def record_clip(self, written: WrittenClip) -> None:
        """The clip thread wrote an event's clip: its path goes on the event row and its message
        (``{prefix}/clips/{camera}``) into the outbox, in one transaction. Waits for queue room
        as long as it takes while running (only later clips wait), ``timeout_s`` at shutdown."""
        event, clip = written.event, written.clip
        path = str(clip.path)
        payload = clip_payload(event, path, clip.starts_at, clip.duration_s, clip.size_bytes)
        message = OutboxMessage(id=None, camera=event.camera,
                                topic=clip_topic(self._prefix, event.camera), payload=payload)
        try:
            self._writer.record_clip(event.id, path, message, timeout_s=self.timeout_s)
        except (TimeoutError, RuntimeError) as exc:  # RuntimeError: the writer has stopped
            # No event will point to the file: remove it now rather than leave it to retention.
            clip.path.unlink(missing_ok=True)
            log.warning("clip of event %s not recorded (%s); its file is removed", event.id,
                        "store queue full at shutdown" if isinstance(exc, TimeoutError) else exc)
