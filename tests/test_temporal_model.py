"""The temporal network: shapes, probabilities, batch independence, both encoder kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.temporal.features import FEATURES, FeatureSpec, track_window
from monitor.temporal.model import LABELS, TemporalNet, predict_proba
from monitor.temporal.simulate import simulate_track

WINDOW = 40


def windows(count: int, seed: int = 0) -> np.ndarray:
    spec = FeatureSpec(window=WINDOW, step_s=0.2)
    rng = np.random.default_rng(seed)
    tracks = [simulate_track(b, rng) for b in ("walk", "run", "fall", "loiter", "stand")]
    rows = [track_window(tracks[i % 5].observations, 768, 576, spec) for i in range(count)]
    return np.stack(rows)


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_probabilities_per_track(kind: str) -> None:
    torch.manual_seed(0)
    net = TemporalNet(len(FEATURES), len(LABELS), WINDOW, kind=kind)  # type: ignore[arg-type]
    batch = windows(20)
    probs = predict_proba(net, batch)
    assert probs.shape == (20, len(LABELS))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # A track's verdict does not depend on which other tracks share its batch.
    alone = predict_proba(net, batch[3:4])
    assert np.allclose(alone, probs[3:4], atol=1e-5)


def test_empty_batch_and_bad_shapes() -> None:
    net = TemporalNet(len(FEATURES), len(LABELS), WINDOW)
    assert predict_proba(net, np.zeros((0, WINDOW, len(FEATURES)))).shape == (0, len(LABELS))
    with pytest.raises(ValueError, match="expected \\(batch, window, features\\)"):
        predict_proba(net, np.zeros((WINDOW, len(FEATURES))))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kind": "lstm"}, "kind must be 'gru' or 'transformer'"),
     ({"kind": "transformer", "hidden": 30, "heads": 4}, "must be a multiple of heads")],
)
def test_rejects_bad_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TemporalNet(len(FEATURES), len(LABELS), WINDOW, **kwargs)


def test_standardisation_buffers_travel_with_the_weights() -> None:
    net = TemporalNet(len(FEATURES), len(LABELS), WINDOW)
    net.feature_mean.fill_(0.5)
    restored = TemporalNet(len(FEATURES), len(LABELS), WINDOW)
    restored.load_state_dict(net.state_dict())
    assert torch.equal(restored.feature_mean, net.feature_mean)


def test_a_gru_learns_to_tell_a_fall_from_a_walk() -> None:
    """Not the real training (that is `monitor train`): a smoke test that the input carries the
    signal and the network can fit it in a few hundred steps."""
    torch.manual_seed(0)
    spec = FeatureSpec(window=WINDOW, step_s=0.2)
    rng = np.random.default_rng(1)
    data, labels = [], []
    for i in range(120):
        behaviour = "fall" if i % 2 else "walk"
        track = simulate_track(behaviour, rng)
        data.append(track_window(track.observations, 768, 576, spec))
        labels.append(LABELS.index("fall") if behaviour == "fall" else LABELS.index("normal"))
    x, y = torch.from_numpy(np.stack(data)), torch.tensor(labels)
    net = TemporalNet(len(FEATURES), len(LABELS), WINDOW)
    net.feature_mean.copy_(x.reshape(-1, x.shape[-1]).mean(0))
    net.feature_std.copy_(x.reshape(-1, x.shape[-1]).std(0).clamp_min(1e-3))
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    train, test = slice(0, 80), slice(80, 120)
    for _ in range(150):
        optimiser.zero_grad()
        loss = nn_loss(net(x[train]), y[train])
        loss.backward()
        optimiser.step()
    predicted = predict_proba(net, x[test].numpy()).argmax(axis=1)
    accuracy = float((predicted == y[test].numpy()).mean())
    assert accuracy >= 0.9, accuracy


def nn_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, target)
