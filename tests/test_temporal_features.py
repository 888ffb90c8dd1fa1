"""Feature windows and the kinematic track simulator (groundwork of the temporal classifier)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.types import Observation
from monitor.temporal.features import FEATURES, FeatureSpec, track_window
from monitor.temporal.simulate import BEHAVIOURS, SimulationSettings, simulate_track
from monitor.types import Box
from tests.builders import EPOCH

SPEC = FeatureSpec(window=10, step_s=0.2)
COL = {name: i for i, name in enumerate(FEATURES)}


def obs(t: float, box: tuple[float, float, float, float], *, cls: str = "Normal",
        zones: frozenset[str] = frozenset()) -> Observation:
    from datetime import timedelta

    return Observation(EPOCH + timedelta(seconds=t), t, int(t * 10), Box(*box), 0.8, cls, zones)


def test_window_shape_and_normalisation() -> None:
    history = [obs(i * 0.2, (100, 100, 150, 250)) for i in range(10)]
    window = track_window(history, 1000, 500, SPEC)
    assert window.shape == (10, len(FEATURES)) and window.dtype == np.float32
    last = window[-1]
    assert last[COL["cx"]] == pytest.approx(0.125)
    assert last[COL["cy"]] == pytest.approx(0.35)
    assert last[COL["w"]] == pytest.approx(0.05)
    assert last[COL["h"]] == pytest.approx(0.3)
    assert last[COL["aspect"]] == pytest.approx(3.0)
    assert not window[:, COL["missing"]].any()


def test_velocity_in_frame_widths_per_second() -> None:
    # Moves 20 px per 0.2 s on a 1000 px frame: 0.1 frame-widths per second.
    history = [obs(i * 0.2, (100 + 20 * i, 100, 150 + 20 * i, 250)) for i in range(10)]
    window = track_window(history, 1000, 500, SPEC)
    assert window[1:, COL["vx"]] == pytest.approx(np.full(9, 0.1), abs=1e-5)
    assert window[:, COL["vy"]] == pytest.approx(np.zeros(10), abs=1e-6)


def test_gaps_and_short_tracks_are_flagged_missing() -> None:
    history = [obs(t, (10, 10, 20, 40)) for t in (0.0, 0.2, 1.0, 1.2, 1.4, 1.6, 1.8)]
    window = track_window(history, 100, 100, SPEC)
    missing = window[:, COL["missing"]].tolist()
    # Grid 0.0 .. 1.8: steps at 0.4, 0.6, 0.8 have no observation within a step.
    assert missing == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert window[2, COL["score"]] == 0.0
    short = track_window(history[-2:], 100, 100, SPEC)
    assert short[:, COL["missing"]].tolist() == [1] * 8 + [0, 0]


def test_fall_class_and_zone_flags() -> None:
    history = [obs(i * 0.2, (10, 10, 20, 40), cls="Fall" if i >= 8 else "Normal",
                   zones=frozenset({"z"}) if i >= 5 else frozenset()) for i in range(10)]
    window = track_window(history, 100, 100, SPEC)
    assert window[:, COL["fall"]].tolist() == [0] * 8 + [1, 1]
    assert window[:, COL["in_zone"]].tolist() == [0] * 5 + [1] * 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"window": 1, "step_s": 0.2}, "window must be at least 2"),
     ({"window": 8, "step_s": 0}, "step_s must be greater than 0"),
     ({"window": 8, "step_s": 0.2, "features": ("cx", "pace")}, "unknown features ['pace']")],
)
def test_spec_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FeatureSpec(**kwargs)


def test_empty_history_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one observation"):
        track_window([], 100, 100, SPEC)


def simulated(behaviour: str, seed: int) -> np.ndarray:
    settings = SimulationSettings()
    track = simulate_track(behaviour, np.random.default_rng(seed), settings)
    spec = FeatureSpec(window=40, step_s=1 / settings.fps)
    return track_window(track.observations, settings.width, settings.height, spec)


def test_simulator_is_reproducible_from_its_seed() -> None:
    first = simulate_track("fall", np.random.default_rng(7))
    again = simulate_track("fall", np.random.default_rng(7))
    other = simulate_track("fall", np.random.default_rng(8))
    assert first == again
    assert first != other
    assert first.event_start_s is not None and 0 < first.event_start_s < 8


def test_simulator_rejects_unknown_behaviour() -> None:
    with pytest.raises(ValueError, match="unknown behaviour 'dance'"):
        simulate_track("dance", np.random.default_rng(0))


def speed(window: np.ndarray) -> float:
    """Median ground speed in person-heights per second (scale-free)."""
    v = np.hypot(window[:, COL["vx"]] * 768, window[:, COL["vy"]] * 576)
    per_height = v[1:] / (window[1:, COL["h"]] * 576)
    seen = (window[1:, COL["missing"]] == 0) & (window[:-1, COL["missing"]] == 0)
    return float(np.median(per_height[seen]))


def test_behaviours_have_their_kinematic_signatures() -> None:
    seeds = range(20)
    run = np.median([speed(simulated("run", s)) for s in seeds])
    walk = np.median([speed(simulated("walk", s)) for s in seeds])
    stand = np.median([speed(simulated("stand", s)) for s in seeds])
    assert run > 2 * walk > 4 * stand
    said_fall = []
    for seed in seeds:
        fall = simulated("fall", seed)
        assert fall[:5, COL["aspect"]].mean() > 1.5       # upright at the start
        assert fall[-5:, COL["aspect"]].mean() < 0.8      # lying at the end
        said_fall.append(fall[-5:, COL["fall"]].mean())
        loiter = simulated("loiter", seed)
        assert loiter[:, COL["in_zone"]].all()
    assert np.mean(said_fall) > 0.6  # the per-frame detector mostly calls a lying person Fall


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_simulated_boxes_stay_in_the_frame(behaviour: str) -> None:
    for seed in range(10):
        track = simulate_track(behaviour, np.random.default_rng(seed))
        assert len(track.observations) >= 8
        for o in track.observations:
            assert 0 <= o.box.x1 < o.box.x2 <= 768 and 0 <= o.box.y1 < o.box.y2 <= 576
