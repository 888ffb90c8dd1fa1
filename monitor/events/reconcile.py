"""Start-up reconciliation: end the events a crash left open.

A daemon killed mid-event (SIGKILL, power loss, OOM) never sent their END. At the next start they
are ended at their newest known sighting, with ``end_reason`` ``restart``, and their END alerts
go out like any other (through the outbox), so a subscriber's "person present" turns off and the
database holds no event without an end. The tracks themselves are gone: the new run starts new
events for whatever is still there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from monitor.types import Alert, AlertType, EndReason, Event


def restart_ends(left_open: Sequence[Event]) -> list[Alert]:
    """END alerts for events found open at start-up, each continuing its event's ``seq``.

    Args:
        left_open: events without an end time (``monitor.store.queries.open_events``).

    Returns:
        One END per event, ended at its newest sighting (its start when none is known).
    """
    return [
        Alert(
            AlertType.END,
            replace(
                event,
                end_time=max(event.seen_at or event.start_time, event.start_time),
                end_reason=EndReason.RESTART,
                seq=event.seq + 1,
            ),
        )
        for event in left_open
    ]
