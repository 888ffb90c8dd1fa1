"""Where the camera pipelines' alerts and review messages go: the store, each with its outbox
message in one transaction (``EventWriter``), so an alert is published if and only if its event
was recorded."""

from __future__ import annotations

import logging

from monitor.mqtt.topics import outbox_message, review_outbox_message
from monitor.store.writer import EventWriter
from monitor.types import Alert, ReviewMessage

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
