"""Review items: one per activity period per camera, grouping its events, with a severity."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from monitor.config import ReviewsConfig
from monitor.events.reviews import ReviewTracker
from monitor.store import EventWriter, open_database
from monitor.types import (
    Alert, AlertType, Box, Event, EventKind, OutboxMessage, Review, ReviewChange, ReviewMessage,
    Severity,
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
    a = event("a")
    reviews.observe(Alert(AlertType.START, a))
    reviews.observe(Alert(AlertType.UPDATE, replace(a, seen_at=at(59)), record_only=True))
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


def test_reviews_cli_lists_filters_and_shows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = open_database(url)
    writer = EventWriter(engine)
    writer.start()
    person = event("ev-1", end_time=at(9))
    writer.record(Alert(AlertType.END, person), None)
    for number, severity in enumerate((Severity.ALERT, Severity.DETECTION)):
        review = Review(id=f"rv-{number}", camera="cam1", start_time=at(number * 60),
                        end_time=at(number * 60 + 9), severity=severity, event_ids=("ev-1",),
                        kinds=("presence", "intrusion"), labels=("person",), zones=("yard",))
        writer.record_review(ReviewMessage(ReviewChange.END, review, "ev-1"),
                             OutboxMessage(None, "cam1", "monitor/reviews", "{}"))
    writer.stop(5.0)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monitor.cli", "reviews", *args, "--db", url],
                              capture_output=True, text=True, timeout=60)

    listed = cli("--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == ["rv-1", "rv-0"]                  # newest first
    assert rows[1]["start_time"] == "2026-01-01T12:00:00.000Z" and rows[1]["events"] == ["ev-1"]
    alerts_only = json.loads(cli("--severity", "alert", "--format", "json").stdout)
    assert [r["id"] for r in alerts_only] == ["rv-0"]
    table = cli().stdout.splitlines()
    assert table[0].split()[:3] == ["START", "(UTC)", "DURATION"] and "rv-0" in table[2]
    csv_lines = cli("--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("id,camera,severity") and "presence intrusion" in csv_lines[1]
    assert json.loads(cli("show", "rv-1").stdout)[0]["severity"] == "detection"
    missing = cli("show", "nope")
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "no review with id nope" in missing.stderr


def test_a_split_does_not_carry_an_event_whose_object_has_gone() -> None:
    reviews = tracker(max_duration_s=60.0, carry_within_s=10.0)
    gone, here = event("gone"), event("here", EventKind.INTRUSION, zone="yard")
    reviews.observe(Alert(AlertType.START, gone))
    reviews.observe(Alert(AlertType.START, here))
    # "here" is refreshed (record-only) while "gone" was last seen at 0 s.
    reviews.observe(Alert(AlertType.UPDATE, replace(here, seen_at=at(58)), record_only=True))
    out = reviews.advance(at(60))
    assert kinds(out) == [("end", "r1", "alert"), ("new", "r2", "alert")]
    assert out[1].review.event_ids == ("here",)


def test_an_event_after_the_gap_opens_a_new_review_even_between_frames() -> None:
    reviews = tracker(gap_s=5.0)
    a = event("a")
    reviews.observe(Alert(AlertType.START, a))
    reviews.observe(ended(a, 2))
    out = reviews.observe(Alert(AlertType.START, event("b", start=8)))   # no advance in between
    assert kinds(out) == [("end", "r1", "detection"), ("new", "r2", "detection")]
