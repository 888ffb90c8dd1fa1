"""The temporal classifier network: a feature window per track -> behaviour probabilities.

A GRU is the default (small, fast on a CPU, handles the carried-forward missing steps well); a
small Transformer encoder is the alternative the field uses for the same job. Both take a batch
of windows (all live tracks of a camera at once) and return one probability row per track.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

LABELS: tuple[str, ...] = ("normal", "loitering", "running", "fall")
Kind = Literal["gru", "transformer"]


class TemporalNet(nn.Module):
    """Sequence classifier over (batch, window, features) float32 input.

    Args:
        n_features: features per step.
        n_labels: output classes.
        window: steps per window (the Transformer's positional table has this many rows).
        kind: ``gru`` or ``transformer``.
        hidden: hidden size of either encoder.
        layers: stacked GRU layers or Transformer encoder layers.
        heads: attention heads (Transformer only; must divide ``hidden``).
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(
        self,
        n_features: int,
        n_labels: int,
        window: int,
        *,
        kind: Kind = "gru",
        hidden: int = 32,
        layers: int = 1,
        heads: int = 2,
    ) -> None:
        super().__init__()
        if kind not in ("gru", "transformer"):
            raise ValueError(f"kind must be 'gru' or 'transformer', got '{kind}'")
        if kind == "transformer" and hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.kind = kind
        # Per-feature standardisation learnt from the training set, saved with the weights.
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.gru: nn.GRU | None = None
        self.encoder: nn.TransformerEncoder | None = None
        if kind == "gru":
            self.gru = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True)
        else:
            self.project = nn.Linear(n_features, hidden)
            self.position = nn.Parameter(torch.zeros(1, window, hidden))
            layer = nn.TransformerEncoderLayer(
                hidden, heads, dim_feedforward=hidden * 2, dropout=0.1, batch_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, n_labels)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, n_labels) for windows of shape (batch, window, features)."""
        x = (windows - self.feature_mean) / self.feature_std
        if self.gru is not None:
            _, last = self.gru(x)
            return self.head(last[-1])  # type: ignore[no-any-return]
        assert self.encoder is not None
        encoded = self.encoder(self.project(x) + self.position[:, : x.shape[1]])
        return self.head(encoded.mean(dim=1))  # type: ignore[no-any-return]


def predict_proba(net: TemporalNet, windows: np.ndarray) -> np.ndarray:
    """Probabilities (batch, n_labels) for a batch of windows (batch, window, features)."""
    if windows.ndim != 3:
        raise ValueError(f"expected (batch, window, features), got shape {windows.shape}")
    if len(windows) == 0:
        return np.zeros((0, net.head.out_features), dtype=np.float32)
    net.eval()
    with torch.inference_mode():
        logits = net(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
        return torch.softmax(logits, dim=1).numpy()
