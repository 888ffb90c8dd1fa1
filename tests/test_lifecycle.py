"""Event lifecycle, driven frame by frame with synthetic tracks."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from monitor.config import EventsConfig
from monitor.events.lifecycle import EventLifecycle
from monitor.events.zones import Zone
from monitor.types import Alert, AlertType, EventKind
from tests.builders import EPOCH, make_detection, make_tracks

# Zone: the right half of the frame. Foot point of box (x1, y1, x2, y2) is ((x1+x2)/2, y2).
RIGHT_HALF = Zone("right", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
LEFT_BOX = (10, 10, 30, 60)    # foot (20, 60): outside
RIGHT_BOX = (60, 10, 80, 60)   # foot (70, 60): inside


def lifecycle(**overrides: float) -> EventLifecycle:
    settings = {"confirm_frames": 3, "confirm_min_score": 0.5, "end_after_s": 2.0,
                "update_interval_s": 1.0, "loitering_s": 5.0}
    settings.update(overrides)
    ids = (f"e{i}" for i in itertools.count(1))
    return EventLifecycle(
        "cam1", ["person"], [RIGHT_HALF], EventsConfig(**settings), new_id=lambda: next(ids),
        snapshot_path=lambda camera, event_id: f"/snap/{camera}/{event_id}.jpg",
    )


def feed(life: EventLifecycle, steps: Iterable[tuple[float, list[tuple[int, tuple, float]]]]) -> list[Alert]:
    alerts: list[Alert] = []
    for t, tracks in steps:
        alerts += life.update(
            make_tracks(t, *[(tid, make_detection(box, score)) for tid, box, score in tracks])
        )
    return alerts


def summary(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return [(a.type.value, a.event.kind.value, a.event.id) for a in alerts]


def test_presence_needs_confirmation_frames() -> None:
    life = lifecycle()
    alerts = feed(life, [(0.0, [(1, LEFT_BOX, 0.9)]), (0.5, [(1, LEFT_BOX, 0.9)])])
    assert alerts == []
    alerts = feed(life, [(1.0, [(1, LEFT_BOX, 0.9)])])
    assert summary(alerts) == [("start", "presence", "e1")]
    event = alerts[0].event
    assert event.start_time == EPOCH            # the track's first sighting, not confirmation
    assert event.end_time is None
    assert event.snapshot == "/snap/cam1/e1.jpg"
    assert event.evidence["sightings"] == 3


def test_low_median_score_is_never_confirmed() -> None:
    life = lifecycle()
    steps = [(t * 0.5, [(1, LEFT_BOX, 0.3)]) for t in range(10)]
    assert feed(life, steps) == []


def test_ignores_unwatched_labels() -> None:
    life = lifecycle()
    alerts: list[Alert] = []
    for t in range(5):
        alerts += life.update(make_tracks(t * 0.5, (1, make_detection(label="car"))))
    assert alerts == []


def test_end_after_unseen_then_forgotten() -> None:
    life = lifecycle()
    feed(life, [(t * 0.5, [(1, LEFT_BOX, 0.9)]) for t in range(4)])  # last seen at 1.5
    assert feed(life, [(3.0, [])]) == []                                # unseen 1.5 s < 2
    alerts = feed(life, [(3.5, [])])                                    # unseen 2.0 s
    assert summary(alerts) == [("end", "presence", "e1")]
    assert alerts[0].event.end_time == EPOCH.replace(second=1, microsecond=500000)
    assert life.history(1) == ()


def test_expire_without_frames_ends_events() -> None:
    life = lifecycle()
    feed(life, [(t * 0.5, [(1, LEFT_BOX, 0.9)]) for t in range(3)])
    assert summary(life.expire(10.0)) == [("end", "presence", "e1")]


def test_updates_are_throttled_and_only_on_change() -> None:
    life = lifecycle(update_interval_s=1.0)
    feed(life, [(t * 0.25, [(1, LEFT_BOX, 0.9)]) for t in range(3)])    # start at 0.5
    moving = [(0.5 + t * 0.25, [(1, (10 + t, 10, 30 + t, 60), 0.9)]) for t in range(1, 9)]
    alerts = feed(life, moving)
    update_times = [a.event.evidence["last_seen"] for a in alerts if a.type is AlertType.UPDATE]
    assert len(update_times) == 2                                       # at 1.5 and 2.5
    still = [(3.0 + t, [(1, (19, 10, 39, 60), 0.9)]) for t in range(4)]
    alerts = feed(life, still)
    assert len([a for a in alerts if a.type is AlertType.UPDATE]) == 1  # one change, then none


def test_intrusion_and_loitering_in_zone() -> None:
    life = lifecycle(loitering_s=2.0, end_after_s=1.0)
    alerts = feed(life, [(t * 0.5, [(1, RIGHT_BOX, 0.9)]) for t in range(3)])
    assert summary(alerts) == [("start", "presence", "e1"), ("start", "intrusion", "e2")]
    assert alerts[1].event.zone == "right"
    alerts = feed(life, [(1.0 + t * 0.5, [(1, RIGHT_BOX, 0.9)]) for t in range(1, 4)])
    loiter = [a for a in alerts if a.event.kind is EventKind.LOITERING]
    assert summary(loiter) == [("start", "loitering", "e3")]          # dwell 2.0 s at t=2.0
    assert loiter[0].event.start_time == EPOCH                         # since zone entry
    # Walks out: zone events end after 1 s outside; presence continues.
    alerts = feed(life, [(2.5 + t * 0.5, [(1, LEFT_BOX, 0.9)]) for t in range(1, 4)])
    ended = [(a.event.kind.value, a.event.end_time) for a in alerts if a.type is AlertType.END]
    assert [k for k, _ in ended] == ["intrusion", "loitering"]
    assert all(end == EPOCH.replace(microsecond=500000, second=2) for _, end in ended)
    assert [a.event.evidence["dwell_s"] for a in alerts if a.type is AlertType.END] == [2.5, 2.5]
    assert [e.kind for e in life.open_events()] == [EventKind.PRESENCE]


def test_brief_exit_does_not_split_a_stay() -> None:
    life = lifecycle(loitering_s=3.0, end_after_s=2.0)
    steps = [(t * 0.5, [(1, RIGHT_BOX if t != 4 else LEFT_BOX, 0.9)]) for t in range(8)]
    alerts = feed(life, steps)
    kinds = [(a.type.value, a.event.kind.value) for a in alerts if a.type is not AlertType.UPDATE]
    assert kinds == [("start", "presence"), ("start", "intrusion"), ("start", "loitering")]


def test_close_all_ends_everything_zone_events_first() -> None:
    life = lifecycle()
    feed(life, [(t * 0.5, [(1, RIGHT_BOX, 0.9), (2, LEFT_BOX, 0.8)]) for t in range(3)])
    alerts = life.close_all()
    assert all(a.type is AlertType.END for a in alerts)
    per_track = [(a.event.track_id, a.event.kind.value) for a in alerts]
    assert per_track == [(1, "intrusion"), (1, "presence"), (2, "presence")]
    assert life.open_events() == []


@pytest.mark.parametrize(
    ("point", "inside"),
    [((75, 50), True), ((25, 50), False), ((50.1, 99), True), ((101, 50), False)],
)
def test_zone_contains(point: tuple[float, float], inside: bool) -> None:
    assert RIGHT_HALF.contains(*point, 100, 100) is inside
