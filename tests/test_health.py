"""Camera health: status changes at once, a camera_offline event only for a long outage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from monitor.events.health import CameraHealth
from monitor.types import AlertType, EndReason, EventKind

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def health(offline_event_s: float = 10.0) -> CameraHealth:
    ids = count(1)
    return CameraHealth(offline_event_s, new_id=lambda: f"e{next(ids)}")


def at(seconds: float) -> tuple[float, datetime]:
    return seconds, T0 + timedelta(seconds=seconds)


def test_first_check_reports_every_camera() -> None:
    update = health().check({"gate": True, "yard": False}, *at(0))
    assert update.statuses == {"gate": "online", "yard": "offline"}
    assert update.alerts == []


def test_a_short_outage_only_flips_the_status() -> None:
    tracker = health(offline_event_s=10)
    tracker.check({"gate": True}, *at(0))
    assert tracker.check({"gate": False}, *at(1)).statuses == {"gate": "offline"}
    assert tracker.check({"gate": False}, *at(10.9)).alerts == []
    back = tracker.check({"gate": True}, *at(11))
    assert back.statuses == {"gate": "online"} and back.alerts == []
    assert tracker.check({"gate": True}, *at(12)).statuses == {}  # only changes are reported


def test_a_long_outage_is_an_event_from_when_it_began_until_frames_return() -> None:
    tracker = health(offline_event_s=10)
    tracker.check({"gate": True, "yard": True}, *at(0))
    tracker.check({"gate": False, "yard": True}, *at(5))
    assert tracker.check({"gate": False, "yard": True}, *at(14)).alerts == []
    (start,) = tracker.check({"gate": False, "yard": True}, *at(15)).alerts
    assert start.type is AlertType.START
    event = start.event
    assert (event.camera, event.kind, event.label, event.track_id) == (
        "gate", EventKind.CAMERA_OFFLINE, "camera", None)
    assert event.start_time == T0 + timedelta(seconds=5) and event.seq == 1
    assert tracker.check({"gate": False, "yard": True}, *at(30)).alerts == []  # one per outage
    (end,) = tracker.check({"gate": True, "yard": True}, *at(65)).alerts
    assert end.type is AlertType.END and end.event.id == event.id and end.event.seq == 2
    assert end.event.end_reason is EndReason.BACK_ONLINE
    assert end.event.end_time == T0 + timedelta(seconds=65)
    assert end.event.evidence["offline_s"] == 60.0


def test_a_camera_offline_from_the_start_gets_its_event_too() -> None:
    tracker = health(offline_event_s=10)
    tracker.check({"gate": False}, *at(0))
    (start,) = tracker.check({"gate": False}, *at(10)).alerts
    assert start.event.start_time == T0


def test_a_removed_camera_and_a_stop_end_open_events() -> None:
    tracker = health(offline_event_s=1)
    tracker.check({"gate": False, "yard": False}, *at(0))
    assert len(tracker.check({"gate": False, "yard": False}, *at(2)).alerts) == 2
    (gone,) = tracker.check({"yard": False}, *at(3)).alerts  # a reload removed gate
    assert gone.event.camera == "gate" and gone.event.end_reason is EndReason.SHUTDOWN
    (stopped,) = tracker.end_all(T0 + timedelta(seconds=4))
    assert stopped.event.camera == "yard" and stopped.type is AlertType.END
    assert tracker.end_all(T0 + timedelta(seconds=5)) == []
    assert tracker.statuses() == {"yard": "offline"}
