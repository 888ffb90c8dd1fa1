"""Typed evidence values: JSON round-trips, and stored data of another shape refused in one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events.evidence import (
    BehaviourEvidence, EvidenceError, StayEvidence, TrackRecord, Trigger,
)
from monitor.types import Box, Observation

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

coordinates = st.floats(0, 2000, allow_nan=False).map(lambda v: round(v, 1))


@st.composite
def observations(draw: st.DrawFn) -> tuple[Observation, ...]:
    count = draw(st.integers(1, 20))
    steps = draw(st.lists(st.integers(1, 5000), min_size=count, max_size=count))
    out = []
    t_ms = 0
    for i, step in enumerate(steps):
        t_ms += step
        x1, y1 = draw(coordinates), draw(coordinates)
        box = Box(x1, y1, x1 + draw(coordinates), y1 + draw(coordinates))
        zones = frozenset(draw(st.lists(st.sampled_from(["yard", "porch", "gate-2"]), max_size=2)))
        out.append(Observation(T0 + timedelta(milliseconds=t_ms), t_ms / 1000, i, box,
                               round(draw(st.floats(0, 1)), 3),
                               draw(st.sampled_from(["Normal", "Fall"])), zones))
    return tuple(out)


@settings(max_examples=60, deadline=None)
@given(observations(), st.tuples(st.integers(1, 4000), st.integers(1, 4000)))
def test_track_record_round_trip(history: tuple[Observation, ...], size: tuple[int, int]) -> None:
    record = TrackRecord(size, history)
    back = TrackRecord.from_json(record.to_json())
    assert back.frame_size == size
    origin = history[0].monotonic
    for kept, seen in zip(back.observations, history, strict=True):
        assert kept.box == Box(*seen.box.as_list()) and kept.zones == seen.zones  # 0.1 px
        assert kept.score == seen.score and kept.class_name == seen.class_name
        assert kept.monotonic == pytest.approx(seen.monotonic - origin, abs=1e-3)
        assert abs((kept.at - seen.at).total_seconds()) < 2e-3
    assert back.to_json() == record.to_json()


def test_behaviour_and_stay_round_trip() -> None:
    trigger = Trigger(T0, T0 + timedelta(seconds=1.5), (10, 12, 14), 0.91)
    ended = BehaviourEvidence("rules", {"lying_aspect": 0.8}, {"speed_hps": 0.1}, (), trigger,
                              {"enter_prob": 0.7})
    started = BehaviourEvidence(
        "temporal", {"name": "default.pt", "sha256": "ab" * 32}, {"speed_hps": 2.5},
        ((T0, {"fall": 0.95, "normal": 0.05}),), trigger, {"enter_prob": 0.7}, ended_by=ended,
    )
    assert BehaviourEvidence.from_json(started.to_json()) == started
    # The rules decider's thresholds and its rule values are both kept (they shared a key).
    stored = ended.to_json()
    assert stored["scorer"] == {"lying_aspect": 0.8} and stored["rules"] == {"speed_hps": 0.1}
    stay = StayEvidence(T0, 12.25, loitering_s=8.0)
    assert StayEvidence.from_json(stay.to_json()) == stay
    assert StayEvidence.from_json(StayEvidence(T0, 1.0).to_json()).loitering_s is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "track record: missing 'frame_size'"),
        ({"frame_size": [1, 1], "first_at": "yesterday", "t": [0]}, "not an ISO time"),
        ({"frame_size": [1, 1], "first_at": "2026-12-03T12:00:00", "t": [0]}, "no time zone"),
        ({"frame_size": [1, 1], "first_at": "2026-12-03T12:00:00Z", "t": [0, 1], "frame": [0],
          "box": [[0, 0, 1, 1]], "score": [1], "class": ["x"], "in_zone": [[]]},
         "different lengths"),
    ],
)
def test_a_track_record_of_another_shape_is_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        TrackRecord.from_json(data)
