"""Decision layer: hysteresis and minimum duration, driven step by step."""

from __future__ import annotations

import pytest

from monitor.temporal.decide import DecisionConfig, Transition, VerdictTracker

CONFIG = DecisionConfig(enter_prob=0.7, exit_prob=0.4, min_duration_s=1.0)


def run(fall_probs: list[float], step_s: float = 0.5) -> list[tuple[str, float]]:
    tracker = VerdictTracker(CONFIG)
    out: list[tuple[str, float]] = []
    for i, p in enumerate(fall_probs):
        for change in tracker.update(1, {"normal": 1 - p, "fall": p}, i * step_s):
            out.append(("start" if change.started else "end", change.at))
    return out


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ([0.1, 0.9, 0.9, 0.9, 0.9], [("start", 0.5)]),           # held 1 s from 0.5
        ([0.1, 0.9, 0.1, 0.9, 0.1, 0.9], []),                    # spikes shorter than 1 s
        ([0.9, 0.9, 0.9, 0.6, 0.5, 0.6, 0.5], [("start", 0.0)]),  # between thresholds: stays on
        ([0.9, 0.9, 0.9, 0.3, 0.3, 0.3], [("start", 0.0), ("end", 1.5)]),
        ([0.9, 0.9, 0.9, 0.3, 0.9, 0.3, 0.9], [("start", 0.0)]),  # dips too brief to end it
        ([0.69] * 10, []),                                       # never reaches enter_prob
    ],
)
def test_hysteresis_and_minimum_duration(probs: list[float], expected: list[tuple[str, float]]) -> None:
    assert run(probs) == expected


def test_background_label_is_never_a_verdict() -> None:
    tracker = VerdictTracker(CONFIG)
    changes = [c for t in range(5) for c in tracker.update(1, {"normal": 1.0}, float(t))]
    assert changes == []


def test_tracks_are_independent_and_forget_ends_active_verdicts() -> None:
    tracker = VerdictTracker(CONFIG)
    for t in (0.0, 0.5, 1.0):
        tracker.update(1, {"fall": 0.9, "running": 0.1}, t)
        tracker.update(2, {"fall": 0.1, "running": 0.95}, t)
    assert tracker.active(1) == ["fall"] and tracker.active(2) == ["running"]
    assert tracker.forget(1, 3.0) == [Transition(1, "fall", False, 3.0, 0.0)]
    assert tracker.active(1) == [] and tracker.active(2) == ["running"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"enter_prob": 0.4, "exit_prob": 0.6}, "exit_prob"), ({"min_duration_s": -1}, ">= 0")],
)
def test_rejects_bad_thresholds(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionConfig(**kwargs)
