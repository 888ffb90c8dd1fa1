"""Review items: one per activity period per camera, grouping its events, with a severity."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

from monitor.config import ReviewsConfig
from monitor.events.reviews import ReviewTracker
from monitor.types import (
    Alert, AlertType, Box, Event, EventKind, ReviewChange, ReviewMessage, Severity,
)
from tests.builders import EPOCH


def at(seconds: float):  # type: ignore[no-untyped-def]
    return EPOCH + timedelta(seconds=seconds)


def event(event_id: str, kind: EventKind = EventKind.PRESENCE, start: float = 0.0,
          zone: str | None = None, **overrides: object) -> Event:
    made = Event(id=event_id, camera="cam1", kind=kind, label="person", track_id=1,
                 start_time=at(start), end_time=None, score=0.9, box=Box(0, 0, 10, 10),
                 zone=zone, zones=(zone,) if zone else (), seen_at=at(start))
    return replace(made, **overrides)  # type: ignore[arg-type]


def ended(e: Event, end: float) -> Alert:
    return Alert(AlertType.END, replace(e, end_time=at(end), seen_at=at(end)))


def tracker(**overrides: object) -> ReviewTracker:
    ids = (f"r{i}" for i in itertools.count(1))
    return ReviewTracker("cam1", ReviewsConfig(**overrides), new_id=lambda: next(ids))  # type: ignore[arg-type]


def kinds(messages: list[ReviewMessage]) -> list[tuple[str, str, str]]:
    return [(m.type.value, m.review.id, m.review.severity.value) for m in messages]


def test_overlapping_people_make_one_review_that_ends_after_the_gap() -> None:
    reviews = tracker(gap_s=5.0)
    a, b = event("a", start=0), event("b", start=2)
    out = reviews.observe(Alert(AlertType.START, a))
    out += reviews.observe(Alert(AlertType.START, b))
    out += reviews.observe(ended(a, 6))
    out += reviews.advance(at(20))          # b still open: the review goes on
    out += reviews.observe(ended(b, 21))
    out += reviews.advance(at(25))          # 4 s quiet
    assert kinds(out) == [("new", "r1", "detection"), ("update", "r1", "detection")]
    out = reviews.advance(at(26))           # 5 s quiet: over
    assert kinds(out) == [("end", "r1", "detection")]
    review = out[0].review
    assert review.event_ids == ("a", "b") and review.end_time == at(21) and review.seq == 3
    # The next person opens a new review.
    assert kinds(reviews.observe(Alert(AlertType.START, event("c", start=30)))) == [
        ("new", "r2", "detection")]


def test_an_intrusion_escalates_the_review_to_an_alert_and_it_stays_one() -> None:
    reviews = tracker(alert_kinds=["intrusion"], alert_zones=["porch"])
    person = event("p")
    out = reviews.observe(Alert(AlertType.START, person))
    out += reviews.observe(Alert(AlertType.START, event("i1", EventKind.INTRUSION, 1, "lawn")))
    assert [m.review.severity for m in out] == [Severity.DETECTION, Severity.DETECTION]
    out = reviews.observe(Alert(AlertType.START, event("i2", EventKind.INTRUSION, 2, "porch")))
    assert kinds(out) == [("update", "r1", "alert")]
    assert out[0].review.kinds == ("presence", "intrusion")
    assert out[0].review.zones == ("lawn", "porch")
    for e in ("p", "i1", "i2"):
        reviews.observe(ended(event(e), 5))
    assert kinds(reviews.advance(at(11))) == [("end", "r1", "alert")]


def test_unannounced_events_are_no_activity() -> None:
    reviews = tracker()
    quiet = event("still", stationary=True, announced=False)
    assert reviews.observe(Alert(AlertType.START, quiet)) == []
    assert reviews.advance(at(100)) == [] and reviews.current is None


def test_a_long_busy_period_is_split_and_open_events_carry_on() -> None:
    reviews = tracker(max_duration_s=60.0)
    reviews.observe(Alert(AlertType.START, event("a")))
    out = reviews.advance(at(60))
    assert kinds(out) == [("end", "r1", "detection"), ("new", "r2", "detection")]
    assert out[1].review.event_ids == ("a",) and out[1].review.start_time == at(60)


def test_close_ends_the_open_review_at_its_last_sighting() -> None:
    reviews = tracker()
    a = event("a")
    reviews.observe(Alert(AlertType.START, a))
    reviews.observe(ended(a, 7))
    out = reviews.close()
    assert kinds(out) == [("end", "r1", "detection")] and out[0].review.end_time == at(7)
    assert out[0].type is ReviewChange.END and out[0].cause == "a"
    assert reviews.close() == []
