"""Temporal-model checkpoints: weights plus everything needed to serve them correctly.

A checkpoint carries its label set, feature spec (names, window, step, feature semantics
version), network shape, training metrics and how it was trained, and a SHA-256 over all of that
and the weights. Loading recomputes the digest, so a corrupted, truncated or carelessly edited file
is refused rather than served. The digest is recorded in the file itself, so someone who edits a
file on purpose can record a new one: against that, pin the digest in config
(``[temporal] sha256``) so only the model a deployment validated ever runs.

The digest is computed over a canonical form (sorted JSON of the metadata, then each tensor's
name, dtype, shape and raw bytes in name order) rather than over the file's bytes, because the
file is a zip written by ``torch.save`` and may differ byte-wise for the same content. The file
is read with ``torch.load(weights_only=True)``: no pickled code runs from a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from monitor.errors import first_line
from monitor.temporal.features import FEATURES_VERSION, FeatureSpec
from monitor.temporal.model import TemporalNet

FORMAT = "monitor-temporal/1"


class CheckpointError(Exception):
    """A checkpoint cannot be served; ``str()`` is one line naming the file and the reason."""


@dataclass(frozen=True, slots=True)
class Architecture:
    """The network's shape, enough to rebuild it before loading the weights."""

    kind: str = "gru"
    hidden: int = 32
    layers: int = 1
    heads: int = 2


@dataclass(frozen=True)
class Checkpoint:
    """A loaded, verified checkpoint.

    Attributes:
        path: where it was read from.
        net: the network in eval mode.
        labels: output classes, in the network's output order.
        spec: how its input windows are built.
        architecture: the network's shape.
        metrics: validation metrics recorded by ``monitor train``.
        training: how it was trained (seed, data, command).
        sha256: the verified content digest.
    """

    path: Path
    net: TemporalNet
    labels: tuple[str, ...]
    spec: FeatureSpec
    architecture: Architecture
    metrics: dict[str, Any]
    training: dict[str, Any]
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


def content_digest(meta: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the canonical form of a checkpoint's metadata and weights."""
    digest = hashlib.sha256()
    digest.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"\n{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: Path,
    net: TemporalNet,
    *,
    labels: tuple[str, ...],
    spec: FeatureSpec,
    architecture: Architecture,
    metrics: dict[str, Any],
    training: dict[str, Any],
) -> str:
    """Write a checkpoint; returns its SHA-256."""
    meta: dict[str, Any] = {
        "format": FORMAT,
        "labels": list(labels),
        "feature_spec": {
            "window": spec.window,
            "step_s": spec.step_s,
            "features": list(spec.features),
            "version": FEATURES_VERSION,
        },
        "architecture": {
            "kind": architecture.kind,
            "hidden": architecture.hidden,
            "layers": architecture.layers,
            "heads": architecture.heads,
        },
        "metrics": metrics,
        "training": training,
    }
    # Round-trip through JSON so what is hashed is exactly what is loaded back.
    meta = json.loads(json.dumps(meta))
    state = {name: tensor.detach().cpu().clone() for name, tensor in net.state_dict().items()}
    sha256 = content_digest(meta, state)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "state": state, "sha256": sha256}, path)
    return sha256


def load_checkpoint(path: str | Path, *, expected_sha256: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint.

    Args:
        path: the file.
        expected_sha256: when set (pinned in config), the checkpoint's digest must equal it.

    Raises:
        CheckpointError: missing or unreadable file, modified content, a digest other than the
            pinned one, or a feature spec or label set this version of monitor cannot serve.
    """
    path = Path(path).expanduser()
    where = f"temporal checkpoint {path}"
    if not path.is_file():
        raise CheckpointError(f"{where}: no such file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and torch errors of many types
        raise CheckpointError(f"{where}: not a readable checkpoint: {first_line(exc)}") from None
    if not isinstance(raw, dict) or not {"meta", "state", "sha256"} <= raw.keys():
        raise CheckpointError(f"{where}: not a monitor temporal checkpoint (no meta/state/sha256)")
    try:
        return _verified(raw, path, where, expected_sha256)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # crafted or odd content
        raise CheckpointError(f"{where}: malformed checkpoint: {first_line(exc)}") from None


def _verified(
    raw: dict[str, Any], path: Path, where: str, expected_sha256: str | None
) -> Checkpoint:
    meta, state, recorded = raw["meta"], raw["state"], raw["sha256"]
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{where}: format {found!r}, expected {FORMAT!r}")
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise CheckpointError(f"{where}: malformed checkpoint: weights are not all tensors")
    actual = content_digest(meta, state)
    if actual != recorded:
        raise CheckpointError(
            f"{where}: content does not match its recorded SHA-256 (modified or corrupt): "
            f"recorded {recorded[:16]}…, computed {actual[:16]}…"
        )
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise CheckpointError(
            f"{where}: SHA-256 {actual} differs from the one pinned in config "
            f"(temporal.sha256 = {expected_sha256})"
        )
    spec = _feature_spec(meta, where)
    labels = tuple(meta["labels"])
    if "normal" not in labels or len(set(labels)) != len(labels):
        raise CheckpointError(f"{where}: label set {list(labels)} needs a unique 'normal' class")
    arch = Architecture(**meta["architecture"])
    try:
        net = TemporalNet(
            len(spec.features), len(labels), spec.window,
            kind=arch.kind,  # type: ignore[arg-type]
            hidden=arch.hidden, layers=arch.layers, heads=arch.heads,
        )
        net.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{where}: weights do not fit {arch}: {first_line(exc)}") from None
    net.eval()
    return Checkpoint(
        path, net, labels, spec, arch, dict(meta["metrics"]), dict(meta["training"]), actual
    )


def _feature_spec(meta: dict[str, Any], where: str) -> FeatureSpec:
    """The checkpoint's feature spec, refused unless this code builds exactly those features."""
    raw = meta.get("feature_spec") or {}
    version = raw.get("version")
    if version != FEATURES_VERSION:
        raise CheckpointError(
            f"{where}: feature spec version {version}, this monitor builds version "
            f"{FEATURES_VERSION}: retrain it with 'monitor train'"
        )
    try:
        return FeatureSpec(
            window=int(raw["window"]), step_s=float(raw["step_s"]), features=tuple(raw["features"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: feature spec does not match: {first_line(exc)}") from None
