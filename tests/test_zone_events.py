"""Zone-level events through one camera's real pipeline: crowds and line crossings, their
counts, their retained state and their rows in the store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import ConfigError, parse_config
from monitor.events.snapshot import SnapshotWriter
from monitor.mqtt.topics import alert_payload, outbox_message, state_messages
from monitor.pipeline import CameraPipeline, build_camera_pipeline
from monitor.store import EventWriter, open_database
from monitor.store.queries import crossing_counts, get_event, list_events
from monitor.types import Alert, AlertType, CameraState, Direction, EndReason, EventKind
from tests.builders import EPOCH, make_detection, make_tracks


class Collect:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def of(self, kind: EventKind) -> list[Alert]:
        return [a for a in self.alerts if a.event.kind is kind and not a.record_only]


class States:
    def __init__(self) -> None:
        self.states: list[CameraState] = []

    def publish_state(self, state: CameraState) -> None:
        self.states.append(state)


def camera_config(**camera: Any) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1"},
        "events": {"confirm_frames": 3, "end_after_s": 2.0, "update_interval_s": 1.0,
                   "loitering_s": 100.0, "alert_never_moved": True},
        "temporal": {"decider": "rules"},
        "cameras": [{"name": "cam1", "url": "rtsp://127.0.0.1/cam1", **camera}],
    }


def pipeline(raw: dict[str, Any], sink: Collect, state: States | None = None,
             crossings: dict[tuple[str, str, Direction], int] | None = None) -> CameraPipeline:
    config = parse_config(raw)
    return build_camera_pipeline(
        config.cameras[0], config, sink, SnapshotWriter(Path("."), 80), None,
        state=state, with_snapshots=False, crossings=crossings,
    )


def box_at(x: float) -> tuple[float, float, float, float]:
    """A 20 px wide person whose foot point is at (x, 60)."""
    return (x - 10, 10, x + 10, 60)


RIGHT_HALF = {"name": "right", "polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}
DOWN_THE_MIDDLE = {"name": "mid", "points": [[0.5, 0.0], [0.5, 1.0]]}


# --- crowd ---------------------------------------------------------------------------------------


def crowd_pipeline(sink: Collect, **crowd: Any) -> CameraPipeline:
    zone = {**RIGHT_HALF, "crowd": {"min_objects": 3, "for_s": 2.0, **crowd}}
    return pipeline(camera_config(zones=[zone]), sink)


def test_crowd_starts_when_the_zone_held_enough_for_long_enough_and_ends_with_the_departure() -> None:
    sink = Collect()
    cam = crowd_pipeline(sink)
    # Tracks 1, 2, 3 enter the right half at 0, 1 and 2 s; 3 is last seen at 6 s.
    for step in range(0, 25):
        t = step * 0.5
        seen = [(1, make_detection(box_at(70 + step % 2)))]
        if t >= 1:
            seen.append((2, make_detection(box_at(80 + step % 2))))
        if 2 <= t <= 6:
            seen.append((3, make_detection(box_at(90 - step % 2))))
        cam.process_tracks(make_tracks(t, *seen))
    crowd = sink.of(EventKind.CROWD)
    assert [a.type for a in crowd][0] is AlertType.START
    start = crowd[0].event
    assert start.track_id is None and start.zone == "right" and start.label == "person"
    assert start.start_time == EPOCH + timedelta(seconds=2)  # when the third one entered
    assert start.seen_at == EPOCH + timedelta(seconds=4)  # published once it held for_s
    assert start.evidence["count"] == 3
    end = crowd[-1].event
    assert crowd[-1].type is AlertType.END and end.end_reason is EndReason.DISPERSED
    assert end.end_time == EPOCH + timedelta(seconds=6)  # track 3's last sighting inside
    assert end.evidence["peak"] == 3 and end.evidence["members"] == [1, 2, 3]
    assert end.dwell_s == 4.0
    assert len([a for a in crowd if a.type is AlertType.START]) == 1
    payload = alert_payload(crowd[-1])
    assert '"track_id":null' in payload and '"kind":"crowd"' in payload


def test_a_short_crowd_or_too_few_raise_nothing() -> None:
    sink = Collect()
    cam = crowd_pipeline(sink, for_s=3.0)
    for step in range(0, 20):
        t = step * 0.5
        seen = [(1, make_detection(box_at(70))), (2, make_detection(box_at(80)))]
        if 2 <= t <= 4:  # three for 2 s only
            seen.append((3, make_detection(box_at(90))))
        cam.process_tracks(make_tracks(t, *seen))
    assert sink.of(EventKind.CROWD) == []


def test_a_member_that_left_but_whose_stay_is_open_does_not_date_the_crowd() -> None:
    """A is inside over 0-1 s and leaves (its stay stays open end_after_s = 2 s); B enters at
    1.5 s, C at 2.5 s. The zone never held two at once before C: no crowd dated from B's entry."""
    sink = Collect()
    cam = crowd_pipeline(sink, min_objects=2, for_s=1.5)
    for step in range(0, 12):
        t = step * 0.5
        seen = []
        if t <= 1.0:
            seen.append((1, make_detection(box_at(70 + step))))
        if t >= 1.5:
            seen.append((2, make_detection(box_at(80 + step % 2))))
        if t >= 2.5:
            seen.append((3, make_detection(box_at(92 - step % 2))))
        cam.process_tracks(make_tracks(t, *seen))
        if t < 4.0:  # 2.5 + 1.5: B and C together for for_s
            assert sink.of(EventKind.CROWD) == [], t
    (start,) = [a for a in sink.of(EventKind.CROWD) if a.type is AlertType.START]
    assert start.event.start_time == EPOCH + timedelta(seconds=2.5)


def test_a_steady_crowd_stores_its_newest_state_without_publishing() -> None:
    sink = Collect()
    cam = crowd_pipeline(sink, min_objects=2, for_s=0.0)
    for step in range(0, 20):
        cam.process_tracks(make_tracks(step * 0.5, (1, make_detection(box_at(70 + step % 2))),
                                       (2, make_detection(box_at(85 - step % 2)))))
    quiet = [a for a in sink.alerts if a.event.kind is EventKind.CROWD and a.record_only]
    published = sink.of(EventKind.CROWD)
    assert [a.type for a in published] == [AlertType.START]  # the count never changed
    assert len(quiet) >= 7  # every update_interval_s = 1 s of the 9.5 s
    assert quiet[-1].event.seen_at >= EPOCH + timedelta(seconds=8.5)  # at most 1 s old


def test_crowd_counts_only_its_label_and_ends_at_shutdown() -> None:
    sink = Collect()
    raw = camera_config(labels=["person", "car"],
                        zones=[{**RIGHT_HALF, "crowd": {"min_objects": 2, "for_s": 0}}])
    cam = pipeline(raw, sink)
    for step in range(6):
        cam.process_tracks(make_tracks(
            step * 0.5, (1, make_detection(box_at(70))), (2, make_detection(box_at(80), label="car"))
        ))
    assert sink.of(EventKind.CROWD) == []  # one person and one car are not two persons
    for step in range(6, 12):
        cam.process_tracks(make_tracks(
            step * 0.5, (1, make_detection(box_at(70))), (3, make_detection(box_at(85)))
        ))
    cam.close()
    crowd = sink.of(EventKind.CROWD)
    assert [a.type for a in crowd] == [AlertType.START, AlertType.END]
    assert crowd[-1].event.end_reason is EndReason.SHUTDOWN
    assert crowd[-1].event.end_time == EPOCH + timedelta(seconds=5.5)


def test_crowd_needs_a_label_of_the_camera() -> None:
    raw = camera_config(zones=[{**RIGHT_HALF, "crowd": {"label": "car"}}])
    with pytest.raises(ConfigError, match="crowd label 'car' is not one of the camera's labels"):
        parse_config(raw)


# --- line crossing ---------------------------------------------------------------------------


def walk(cam: CameraPipeline, track_id: int, xs: list[float], t0: float, score: float = 0.9,
         dt: float = 0.5) -> float:
    for i, x in enumerate(xs):
        cam.process_tracks(make_tracks(t0 + i * dt, (track_id, make_detection(box_at(x), score))))
    return t0 + len(xs) * dt


def crossings(sink: Collect) -> list[tuple[str, int | None, float]]:
    return [
        (a.event.direction.value if a.event.direction else "?", a.event.track_id,
         (a.event.start_time - EPOCH).total_seconds())
        for a in sink.of(EventKind.LINE_CROSSING) if a.type is AlertType.START
    ]


def test_crossings_are_counted_both_ways_at_the_interpolated_moment() -> None:
    sink, state = Collect(), States()
    cam = pipeline(camera_config(lines=[DOWN_THE_MIDDLE]), sink, state)
    # Left to right: the foot point passes x = 50 between 40 (t=1.0) and 60 (t=1.5).
    t = walk(cam, 1, [20, 30, 40, 60, 70, 80], 0.0)
    t = walk(cam, 1, [70, 45, 20], t)  # and back: 70 -> 45 crosses, 45 -> 20 does not again
    assert crossings(sink) == [("out", 1, 1.25), ("in", 1, pytest.approx(3.0 + 0.5 * 20 / 25))]
    ends = [a for a in sink.of(EventKind.LINE_CROSSING) if a.type is AlertType.END]
    assert [e.event.end_reason for e in ends] == [EndReason.CROSSED] * 2
    assert all(e.event.end_time == e.event.start_time and e.event.seq == 2 for e in ends)
    assert state.states[-1].crossings == {("mid", "person", Direction.IN): 1,
                                          ("mid", "person", Direction.OUT): 1}
    topics = dict(state_messages("monitor", state.states[-1]))
    assert topics["monitor/cam1/crossings/mid/person/in"] == "1"
    assert topics["monitor/cam1/crossings/mid/person/out"] == "1"


def test_jitter_on_the_line_and_passing_beside_it_count_nothing() -> None:
    sink = Collect()
    short = {"name": "gate", "points": [[0.5, 0.0], [0.5, 0.3]]}  # ends above the feet (y 0.6)
    cam = pipeline(camera_config(lines=[DOWN_THE_MIDDLE, short]), sink)
    walk(cam, 1, [30, 49, 51, 49.5, 50.5, 49, 51, 30], 0.0)  # within hysteresis 0.02 = 2 px
    assert crossings(sink) == []
    walk(cam, 2, [20, 40, 60, 80], 10.0)  # crosses "mid" only: "gate" does not reach the feet
    assert [a.event.zone for a in sink.of(EventKind.LINE_CROSSING)] == ["mid", "mid"]


def test_a_crossing_before_confirmation_counts_once_confirmed_and_never_without() -> None:
    sink = Collect()
    cam = pipeline(camera_config(lines=[DOWN_THE_MIDDLE]), sink)
    walk(cam, 1, [45, 60, 70], 0.0)  # crosses on its 2nd sighting, confirmed on its 3rd
    assert crossings(sink) == [("out", 1, pytest.approx(0.5 * 5 / 15, abs=1e-5))]
    walk(cam, 2, [40, 60, 70, 80], 10.0, score=0.2)  # never confirmed: a false detection
    assert len(crossings(sink)) == 1


def test_an_object_that_never_moved_counts_no_crossing() -> None:
    """With the default stationary check a big box whose foot point jitters over the line
    (its box keeps overlapping itself) has not moved: no crossing, no count."""
    sink, state = Collect(), States()
    raw = camera_config(lines=[DOWN_THE_MIDDLE])
    raw["events"]["alert_never_moved"] = False
    cam = pipeline(raw, sink, state)
    for step in range(12):
        x = 46 if step % 2 else 54  # foot 4 px either side; a 92 px wide box barely shifts
        cam.process_tracks(make_tracks(step * 0.5, (1, make_detection((x - 46, 0, x + 46, 60)))))
    assert crossings(sink) == []
    assert set(state.states[-1].crossings.values()) == {0}


def test_unalerted_directions_are_recorded_and_counted_but_not_announced() -> None:
    sink, state = Collect(), States()
    line = {**DOWN_THE_MIDDLE, "alert_directions": ["in"]}
    before = {("mid", "person", Direction.OUT): 41, ("old-line", "person", Direction.IN): 7}
    cam = pipeline(camera_config(lines=[line]), sink, state, crossings=before)
    assert state.states[0].crossings[("mid", "person", Direction.OUT)] == 41  # at once
    assert ("old-line", "person", Direction.IN) not in state.states[0].crossings  # removed line
    walk(cam, 1, [20, 40, 60, 80], 0.0)
    (start,) = [a for a in sink.of(EventKind.LINE_CROSSING) if a.type is AlertType.START]
    assert start.event.direction is Direction.OUT and not start.event.announced
    assert state.states[-1].crossings[("mid", "person", Direction.OUT)] == 42


def test_line_names_share_the_zone_namespace_and_need_two_points() -> None:
    with pytest.raises(ConfigError, match="unique together"):
        parse_config(camera_config(zones=[{**RIGHT_HALF, "name": "mid"}], lines=[DOWN_THE_MIDDLE]))
    with pytest.raises(ConfigError, match="same point"):
        parse_config(camera_config(lines=[{"name": "x", "points": [[0.1, 0.1], [0.1, 0.1]]}]))
    with pytest.raises(ConfigError, match="reserved"):
        parse_config(camera_config(lines=[{**DOWN_THE_MIDDLE, "name": "crossings"}]))


# --- the store ---------------------------------------------------------------------------------


def test_zone_level_events_are_stored_and_crossings_counted_from_the_store(db_url: str) -> None:
    """On SQLite and PostgreSQL: a crowd has no track, a crossing has a direction, and the
    daemon's start-up counts come from the stored crossings."""
    engine = open_database(db_url)
    writer = EventWriter(engine)
    writer.start()
    try:
        sink = Collect()
        raw = camera_config(lines=[DOWN_THE_MIDDLE],
                            zones=[{**RIGHT_HALF, "crowd": {"min_objects": 2, "for_s": 0}}])
        cam = pipeline(raw, sink)
        for step in range(8):
            x = 20 + step * 10
            cam.process_tracks(make_tracks(step * 0.5, (1, make_detection(box_at(x))),
                                           (2, make_detection(box_at(x + 5)))))
        cam.close()
        for alert in sink.alerts:
            writer.record(alert, outbox_message("monitor", alert))
        assert writer.flush(timeout_s=10.0)
        crowd = [a.event for a in sink.alerts if a.event.kind is EventKind.CROWD]
        assert crowd, "two people walking into the right half make a crowd of two"
        stored = get_event(engine, crowd[-1].id)
        assert stored is not None and stored.track_id is None and stored.end_time is not None
        assert stored == crowd[-1]
        assert crossing_counts(engine, "cam1") == {("mid", "person", Direction.OUT): 2}
        assert crossing_counts(engine, "other") == {}
        kinds = {e.kind for e in list_events(engine, limit=100)}
        assert {EventKind.CROWD, EventKind.LINE_CROSSING} <= kinds
    finally:
        writer.stop(timeout_s=5.0)
        engine.dispose()
