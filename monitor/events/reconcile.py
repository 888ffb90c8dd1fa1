"""Start-up reconciliation: end the events a crash left open.

A daemon killed mid-event (SIGKILL, power loss, OOM) never sent their END. At the next start they
are ended at their newest known sighting, with ``end_reason`` ``restart``, and their END alerts
go out like any other (through the outbox), so a subscriber's "person present" turns off and the
database holds no event without an end. The tracks themselves are gone: the new run starts new
events for whatever is still there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from monitor.types import (
    Alert, AlertType, EndReason, Event, Review, ReviewChange, ReviewMessage,
)


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


def restart_review_ends(
    left_open: Sequence[Review],
    ended_now: Mapping[str, Event],
    stored_event: Callable[[str], Event | None],
) -> list[ReviewMessage]:
    """END messages for reviews found open at start-up: each ends when its last event did.

    Args:
        left_open: reviews without an end time.
        ended_now: the events ``restart_ends`` is ending, by id (their new end times).
        stored_event: reads one of the review's other events from the store.
    """
    messages = []
    for review in left_open:
        ends = [review.start_time]
        for event_id in review.event_ids:
            event = ended_now.get(event_id) or stored_event(event_id)
            if event is not None:
                ends.append(event.end_time or event.seen_at or event.start_time)
        ended = replace(review, end_time=max(ends), seq=review.seq + 1)
        cause = review.event_ids[-1] if review.event_ids else ""
        messages.append(ReviewMessage(ReviewChange.END, ended, cause))
    return [m for m in messages if m.cause]  # an outbox row names an event
