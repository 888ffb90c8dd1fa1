"""Event lifecycle, driven frame by frame with synthetic tracks."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import timedelta

import pytest

from monitor.config import EventsConfig
from monitor.events.lifecycle import EventLifecycle
from monitor.events.zones import Zone
from monitor.types import Alert, AlertType, EndReason, EventKind
from tests.builders import EPOCH, make_detection, make_tracks

# Zone: the right half of the frame. Foot point of box (x1, y1, x2, y2) is ((x1+x2)/2, y2).
RIGHT_HALF = Zone("right", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
LEFT_BOX = (10, 10, 30, 60)    # foot (20, 60): outside
RIGHT_BOX = (60, 10, 80, 60)   # foot (70, 60): inside


def lifecycle(**overrides: float | bool) -> EventLifecycle:
    # Most tables here hold a box still for brevity: let objects that never moved alert, except
    # in the stationary tests, which use the default.
    settings: dict[str, float | bool] = {
        "confirm_frames": 3, "confirm_min_score": 0.5, "end_after_s": 2.0,
        "update_interval_s": 1.0, "loitering_s": 5.0, "alert_never_moved": True,
    }
    settings.update(overrides)
    ids = (f"e{i}" for i in itertools.count(1))
    return EventLifecycle(
        "cam1", ["person"], [RIGHT_HALF], EventsConfig(**settings),  # type: ignore[arg-type]
        new_id=lambda: next(ids),
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
    """The alerts that change an event, without the record-only refreshes of quiet ones."""
    return [(a.type.value, a.event.kind.value, a.event.id) for a in alerts if not a.record_only]


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
    update_times = [a.event.evidence["last_seen"] for a in alerts
                    if a.type is AlertType.UPDATE and not a.record_only]
    assert len(update_times) == 2                                       # at 1.5 and 2.5
    still = [(3.0 + t, [(1, (19, 10, 39, 60), 0.9)]) for t in range(4)]
    alerts = feed(life, still)
    assert len([a for a in alerts if a.type is AlertType.UPDATE and not a.record_only]) == 1


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


# --- stationary objects, alert numbering, end reasons ------------------------------------------

def walk(t0: float, t1: float, *, step_s: float = 0.5, y0: float = 10, speed: float = 8,
         track_id: int = 1) -> list[tuple[float, list[tuple[int, tuple, float]]]]:
    """A 20x50 box in the left half (outside the zone) moving down by ``speed`` px/s, one
    sighting every ``step_s``."""
    steps = []
    t = t0
    while t <= t1 + 1e-9:
        y = y0 + speed * (t - t0)
        steps.append((t, [(track_id, (10, y, 30, y + 50), 0.9)]))
        t = round(t + step_s, 6)
    return steps


def still(t0: float, t1: float, box: tuple, *, step_s: float = 0.5, track_id: int = 1,
          jitter: float = 0.0) -> list[tuple[float, list[tuple[int, tuple, float]]]]:
    steps = []
    for i in range(int(round((t1 - t0) / step_s)) + 1):
        d = jitter if i % 2 else -jitter
        x1, y1, x2, y2 = box
        steps.append((t0 + i * step_s, [(track_id, (x1 + d, y1 - d, x2 - d, y2 + d), 0.9)]))
    return steps


def test_an_object_that_never_moved_is_recorded_stationary_without_alerts() -> None:
    life = lifecycle(alert_never_moved=False, stationary_after_s=4.0, loitering_s=2.0)
    # A static false detection in the zone, with a jittering box, for 20 s.
    alerts = feed(life, still(0.0, 20.0, RIGHT_BOX, jitter=1.0))
    announced = [a for a in alerts if a.event.announced]
    assert announced == []
    assert summary(alerts) == [("start", "presence", "e1")]      # one record, at 4 s, no zone events
    # Its stored state is refreshed once per update_interval_s (1 s), published never.
    refreshes = [a.event.seen_at for a in alerts if a.record_only]
    assert len(refreshes) == 16 and refreshes[-1] == EPOCH + timedelta(seconds=20)
    record = alerts[0].event
    assert record.stationary and record.start_time == EPOCH
    alerts = life.close_all()
    assert summary(alerts) == [("end", "presence", "e1")] and not alerts[0].event.announced
    assert life.present() == []


def test_a_walker_is_announced_at_confirmation() -> None:
    life = lifecycle(alert_never_moved=False)
    alerts = feed(life, walk(0.0, 1.0, speed=40))  # 0.8 body heights a second
    assert summary(alerts) == [("start", "presence", "e1")]
    assert alerts[0].event.announced and not alerts[0].event.stationary


def test_a_stationary_object_that_moves_becomes_an_event() -> None:
    life = lifecycle(alert_never_moved=False, stationary_after_s=3.0, end_after_s=5.0)
    alerts = feed(life, still(0.0, 5.0, LEFT_BOX))
    assert [a.event.announced for a in alerts if not a.record_only] == [False]
    alerts = feed(life, walk(5.5, 7.0, y0=10, speed=40))       # gets up and walks off
    starts = [a for a in alerts if a.type is AlertType.START]
    assert summary(starts) == [("start", "presence", "e1")]      # the same event, now published
    assert starts[0].event.announced and starts[0].event.seq == 2
    assert starts[0].event.start_time == EPOCH                   # still dated from its first sighting


def test_an_object_that_stops_keeps_its_event_but_updates_stop() -> None:
    life = lifecycle(alert_never_moved=False, stationary_after_s=3.0, update_interval_s=1.0,
                     end_after_s=5.0)
    alerts = feed(life, walk(0.0, 3.0, speed=40))                # walks in (y 10 -> 130)
    assert ("start", "presence", "e1") in summary(alerts)
    alerts = feed(life, still(3.5, 20.0, (10, 130, 30, 180), jitter=1.0))   # sits down
    updates = [a.event for a in alerts if a.type is AlertType.UPDATE and not a.record_only]
    assert updates and updates[-1].stationary                    # one update says it stopped ...
    assert len([e for e in updates if e.stationary]) == 1        # ... then no more
    refreshes = [a.event for a in alerts if a.record_only]       # stored, not published
    after = [e for e in refreshes if e.seen_at > updates[-1].seen_at]  # type: ignore[operator]
    assert after and {e.seq for e in after} == {updates[-1].seq}
    assert not [a for a in alerts if a.type is AlertType.END]     # the event stays open
    assert [label for label, _ in life.present()] == ["person"]


def test_alerts_are_numbered_and_say_why_they_ended() -> None:
    life = lifecycle(alert_never_moved=False, update_interval_s=1.0, end_after_s=1.0)
    alerts = feed(life, walk(0.0, 4.0, speed=10))
    alerts += feed(life, [(6.0, [])])
    assert [a.event.seq for a in alerts] == list(range(1, len(alerts) + 1))
    assert [a.type for a in alerts][0] is AlertType.START and alerts[-1].type is AlertType.END
    assert alerts[-1].event.end_reason is EndReason.UNSEEN
    keys = {(a.event.id, a.type, a.event.seq) for a in alerts}
    assert len(keys) == len(alerts)


def test_zone_events_carry_dwell_zones_and_leave_reason() -> None:
    life = lifecycle(end_after_s=1.0, loitering_s=10.0)
    alerts = feed(life, [(t * 0.5, [(1, RIGHT_BOX, 0.9)]) for t in range(5)])
    intrusion = next(a.event for a in alerts if a.event.kind is EventKind.INTRUSION)
    assert intrusion.zones == ("right",) and intrusion.dwell_s == 1.0
    assert life.present() == [("person", ("right",))]
    alerts = feed(life, [(2.0 + t * 0.5, [(1, LEFT_BOX, 0.9)]) for t in range(1, 4)])
    ended = [a.event for a in alerts if a.type is AlertType.END]
    assert [(e.kind, e.end_reason) for e in ended] == [(EventKind.INTRUSION, EndReason.LEFT_ZONE)]
    assert ended[0].dwell_s == 2.0
    presence = life.open_events()[0]
    assert presence.zones == ("right",)                         # where it has been
    assert life.present() == [("person", ())]
    assert summary(life.close_all()) == [("end", "presence", "e1")]


def test_evidence_times_use_the_one_iso_format() -> None:
    life = lifecycle()
    alerts = feed(life, [(t * 0.5, [(1, LEFT_BOX, 0.9)]) for t in range(3)])
    assert alerts[0].event.evidence["first_seen"] == "2026-01-01T12:00:00.000Z"


def test_a_parked_object_that_drives_off_has_not_loitered() -> None:
    life = lifecycle(alert_never_moved=False, stationary_after_s=3.0, loitering_s=5.0,
                     end_after_s=5.0)
    feed(life, still(0.0, 60.0, RIGHT_BOX))                      # parked in the zone for a minute
    x = 60
    moving = [(60.5 + i * 0.5, [(1, (x + 0, 10 + 12 * i, x + 20, 60 + 12 * i), 0.9)])
              for i in range(1, 4)]
    alerts = feed(life, moving)
    kinds = [(a.type.value, a.event.kind.value) for a in alerts if not a.record_only]
    assert ("start", "presence") in kinds and ("start", "intrusion") in kinds
    assert ("start", "loitering") not in kinds                   # its stay counts from the move
    intrusion = next(a.event for a in alerts if a.event.kind is EventKind.INTRUSION)
    assert intrusion.dwell_s is not None and intrusion.dwell_s < 2
