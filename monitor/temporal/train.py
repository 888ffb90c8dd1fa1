"""``monitor train``: fit the temporal classifier and write a verified checkpoint.

Sound practice, because a model that will raise alarms on people's cameras must be judged on data
it never saw:

* data: simulated tracks of every behaviour (randomised detection rate, length, distance,
  jitter and missed detections) plus, optionally, operator-labelled events from the database;
* split into train and validation **by track**, so windows of one track never sit on both sides;
* class weights against imbalance; early stopping on validation macro-F1; a fixed seed;
* per-class precision, recall, F1 and the confusion matrix, stored in the checkpoint.

Window labels follow what the daemon will be asked: a ``fall`` window must show the drop (the
body half-way down at least ``after_s`` before the window ends and ``before_s`` after it starts);
windows that show only a person lying are ``normal``: from a bounded window one cannot tell a
person who fell long ago from something that always lay there (vtest.avi's yellow object), so
the decision layer, not the network, keeps a fall event open while the person stays down.
Windows right at the edges of the drop are left out of training rather than labelled either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monitor.events.evidence import EvidenceError, TrackRecord
from monitor.types import Observation
from monitor.types import Event
from monitor.temporal.checkpoint import Architecture, save_checkpoint
from monitor.temporal.features import FeatureSpec, track_window
from monitor.temporal.model import LABELS, TemporalNet, predict_proba
from monitor.temporal.simulate import SimulatedTrack, SimulationSettings, simulate_track

BEHAVIOUR_LABELS: dict[str, str] = {
    "walk": "normal", "stand": "normal", "lie": "normal",
    "run": "running", "loiter": "loitering", "fall": "fall",
}
"""What each simulated behaviour teaches; ``fall`` tracks are labelled per window."""


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Everything that decides the trained model; stored in the checkpoint.

    Attributes:
        seed: one seed for the simulator, the split, initialisation and batch order.
        tracks_per_behaviour: simulated tracks of each behaviour.
        windows_per_track: windows cut from each track (at random end times).
        val_fraction: share of tracks held out for validation.
        window, step_s: the feature window.
        kind, hidden, layers, heads: the network.
        epochs: most passes over the training set.
        patience: epochs without a better validation macro-F1 before stopping.
        batch_size, learning_rate: the optimiser's.
        fps, duration_s, jitter: ranges simulated tracks are drawn from (detection rate per
            camera, track length, box noise).
        fall_before_s, fall_after_s: how much of the upright walk and of the lying a window must
            show around the drop to be labelled ``fall``.
        running_min_hps, walking_max_hps: a camera sees speed in body heights per second, and a
            runner heading at the camera looks no faster than a walker crossing the view: runs
            that look slower than the first and walks that look faster than the second are
            left out, so the label stays something the pixels can show.
    """

    seed: int = 7
    tracks_per_behaviour: int = 500
    windows_per_track: int = 8
    val_fraction: float = 0.2
    window: int = 40
    step_s: float = 0.2
    kind: str = "gru"
    hidden: int = 32
    layers: int = 1
    heads: int = 2
    epochs: int = 60
    patience: int = 8
    batch_size: int = 256
    learning_rate: float = 3e-3
    fps: tuple[float, float] = (2.5, 10.0)
    duration_s: tuple[float, float] = (6.0, 20.0)
    jitter: tuple[float, float] = (0.02, 0.06)
    fall_before_s: float = 1.0
    fall_after_s: float = 0.4
    running_min_hps: float = 1.35
    walking_max_hps: float = 1.2

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(window=self.window, step_s=self.step_s)

    @property
    def architecture(self) -> Architecture:
        return Architecture(self.kind, self.hidden, self.layers, self.heads)


@dataclass(frozen=True)
class Dataset:
    """Windows with their labels and the track each came from (the unit of the split).

    Attributes:
        windows: float32 (n, window, features).
        labels: int64 (n,), indices into the label set.
        groups: (n,) track ids: windows of one group stay on one side of the split.
    """

    windows: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> Dataset:
        return Dataset(self.windows[index], self.labels[index], self.groups[index])

    @staticmethod
    def concat(parts: Sequence[Dataset]) -> Dataset:
        return Dataset(
            np.concatenate([p.windows for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.groups for p in parts]),
        )


@dataclass(frozen=True, slots=True)
class LabelledTrack:
    """One track with its label source: a simulated one, or an operator-labelled event.

    ``label_at(end_time)`` gives a window's label (None: leave the window out).
    """

    observations: tuple[Observation, ...]
    width: int
    height: int
    label_at: Callable[[float], str | None]
    group: int


@dataclass(frozen=True)
class TrainResult:
    net: TemporalNet
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    sha256: str | None = None


# --- data ---------------------------------------------------------------------------------------


def fall_window_label(track: SimulatedTrack, settings: TrainSettings) -> Callable[[float], str | None]:
    """Label rule for windows of a simulated fall (see the module docstring)."""
    assert track.event_start_s is not None and track.event_mid_s is not None
    start, mid = track.event_start_s, track.event_mid_s
    span = (settings.window - 1) * settings.step_s

    def label(end: float) -> str | None:
        if end < start:
            return "normal"  # still walking
        if mid < end - span:
            return "normal"  # only lying is left in the window
        if end - span + settings.fall_before_s <= mid <= end - settings.fall_after_s:
            return "fall"
        return None  # at the edges of the drop: either label would teach noise

    return label


def simulated_tracks(settings: TrainSettings, rng: np.random.Generator) -> list[LabelledTrack]:
    tracks: list[LabelledTrack] = []
    for behaviour in BEHAVIOUR_LABELS:
        for _ in range(settings.tracks_per_behaviour):
            sim = SimulationSettings(
                fps=float(rng.uniform(*settings.fps)),
                duration_s=float(rng.uniform(*settings.duration_s)),
                jitter=float(rng.uniform(*settings.jitter)),
            )
            track = simulate_track(behaviour, rng, sim)
            apparent = apparent_speed_hps(track.observations)
            if (behaviour == "run" and apparent < settings.running_min_hps) or (
                behaviour == "walk" and apparent > settings.walking_max_hps
            ):
                continue
            if behaviour == "fall":
                label_at = fall_window_label(track, settings)
            else:
                label_at = _constant(BEHAVIOUR_LABELS[behaviour])
            tracks.append(
                LabelledTrack(track.observations, sim.width, sim.height, label_at, len(tracks))
            )
    return tracks


def apparent_speed_hps(observations: Sequence[Observation]) -> float:
    """Median foot-point speed over the track, in body heights per second (what a camera sees)."""
    if len(observations) < 2:
        return 0.0
    t = np.array([o.monotonic for o in observations])
    foot = np.array([o.box.foot for o in observations])
    height = np.array([o.box.y2 - o.box.y1 for o in observations])
    step = np.hypot(*np.diff(foot, axis=0).T) / np.maximum(height[1:], 1.0)
    return float(np.median(step / np.maximum(np.diff(t), 1e-6)))


def _constant(label: str) -> Callable[[float], str | None]:
    return lambda _end: label


def labelled_tracks(events: Sequence[Event], settings: TrainSettings) -> list[LabelledTrack]:
    """Operator-labelled events as training tracks (``monitor train --from-db``).

    Windows ending inside the event get the operator's label, except for ``fall``: there the
    simulated tracks' rule applies with the event's start as the drop (windows that show only
    lying stay ``normal``). Events of one track (its presence, intrusion and fall events all
    keep the same observations) share a group, so they land on one side of the split. Events
    without stored track data (older versions, never ended) are skipped.
    """
    tracks = []
    groups: dict[tuple[str, int | None, str], int] = {}
    span = (settings.window - 1) * settings.step_s
    for event in events:
        stored = event.evidence.get("track")
        if not isinstance(stored, dict) or event.end_time is None:
            continue
        try:
            record = TrackRecord.from_json(stored)
        except (EvidenceError, TypeError, ValueError):
            continue  # an older version's record, or none kept
        observations, frame = record.observations, record.frame_size
        origin = observations[0].at
        start = (event.start_time - origin).total_seconds()
        end = (event.end_time - origin).total_seconds()
        label = event.operator_label

        def label_at(moment: float, start: float = start, end: float = end,
                     label: str | None = label) -> str | None:
            if not start - 1e-6 <= moment <= end + 1e-6:
                return None
            if label != "fall":
                return label
            if moment - span + settings.fall_before_s <= start <= moment - settings.fall_after_s:
                return "fall"
            return "normal" if start < moment - span else None

        key = (event.camera, event.track_id, observations[0].at.isoformat())
        group = groups.setdefault(key, len(groups))
        tracks.append(LabelledTrack(observations, int(frame[0]), int(frame[1]), label_at, group))
    return tracks


def build_dataset(
    tracks: Sequence[LabelledTrack],
    spec: FeatureSpec,
    labels: Sequence[str],
    windows_per_track: int,
    rng: np.random.Generator,
) -> Dataset:
    """Cut windows at random end observations of each track and label them."""
    index = {label: i for i, label in enumerate(labels)}
    windows, ys, groups = [], [], []
    for track in tracks:
        count = len(track.observations)
        if count < 2:
            continue
        ends = rng.choice(np.arange(1, count), size=min(windows_per_track, count - 1), replace=False)
        for end in sorted(ends):
            label = track.label_at(track.observations[end].monotonic)
            if label is None:
                continue
            history = track.observations[: end + 1]
            windows.append(track_window(history, track.width, track.height, spec))
            ys.append(index[label])
            groups.append(track.group)
    if not windows:
        raise ValueError("no training windows: every track was too short or unlabelled")
    return Dataset(np.stack(windows), np.array(ys, dtype=np.int64), np.array(groups))


def split_by_group(
    groups: np.ndarray, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation windows; no group (track) is on both sides."""
    unique = np.unique(groups)
    held_out = rng.choice(unique, size=max(1, round(len(unique) * val_fraction)), replace=False)
    is_val = np.isin(groups, held_out)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def class_weights(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Inverse class frequency, normalised to mean 1 over the classes present."""
    counts = np.bincount(labels, minlength=n_labels).astype(float)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_labels, 0.0)
    present = weights > 0
    weights[present] /= weights[present].mean()
    return weights


# --- metrics ------------------------------------------------------------------------------------


def classification_metrics(
    truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Per-class precision/recall/F1, macro-F1, accuracy and the confusion matrix (rows: truth)."""
    n = len(labels)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    per_class: dict[str, dict[str, float]] = {}
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(confusion[i].sum()),
        }
    present = [label for label in labels if per_class[label]["support"]]
    return {
        "per_class": per_class,
        "macro_f1": round(float(np.mean([per_class[label]["f1"] for label in present])), 4),
        "accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 4),
        "confusion": confusion.tolist(),
        "labels": list(labels),
    }


def format_metrics(metrics: dict[str, Any]) -> str:
    """Per-class table and confusion matrix as text."""
    labels = metrics["labels"]
    width = max(len(label) for label in labels) + 2
    lines = [f"{'class':<{width}}precision  recall     F1  support"]
    for label in labels:
        row = metrics["per_class"][label]
        lines.append(
            f"{label:<{width}}{row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f}"
            f" {row['support']:>8d}"
        )
    lines.append(f"macro-F1 {metrics['macro_f1']:.3f}   accuracy {metrics['accuracy']:.3f}")
    lines.append("")
    lines.append("confusion (rows: truth, columns: predicted)")
    lines.append(" " * width + "".join(f"{label[:9]:>10}" for label in labels))
    for label, row in zip(labels, metrics["confusion"], strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>10d}" for count in row))
    return "\n".join(lines)


# --- fitting ------------------------------------------------------------------------------------


def fit(
    train: Dataset,
    val: Dataset,
    settings: TrainSettings,
    labels: Sequence[str],
    *,
    progress: bool = True,
) -> TrainResult:
    """Train with class weights and early stopping on validation macro-F1; returns the best."""
    from tqdm import tqdm

    torch.manual_seed(settings.seed)
    spec = settings.spec
    net = TemporalNet(
        len(spec.features), len(labels), spec.window,
        kind=settings.kind,  # type: ignore[arg-type]
        hidden=settings.hidden, layers=settings.layers, heads=settings.heads,
    )
    flat = train.windows.reshape(-1, train.windows.shape[-1])
    net.feature_mean.copy_(torch.from_numpy(flat.mean(axis=0)))
    net.feature_std.copy_(torch.from_numpy(np.maximum(flat.std(axis=0), 1e-3)))
    weights = torch.tensor(class_weights(train.labels, len(labels)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    x = torch.from_numpy(train.windows)
    y = torch.from_numpy(train.labels)
    order = torch.Generator().manual_seed(settings.seed)

    best_f1, best_state, best_epoch, history = -1.0, None, 0, []
    bar = tqdm(range(1, settings.epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        net.train()
        total = 0.0
        permutation = torch.randperm(len(y), generator=order)
        for start in range(0, len(y), settings.batch_size):
            batch = permutation[start : start + settings.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(net(x[batch]), y[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        predicted = predict_proba(net, val.windows).argmax(axis=1)
        val_f1 = classification_metrics(val.labels, predicted, labels)["macro_f1"]
        history.append({"epoch": epoch, "loss": round(total / len(y), 4), "val_macro_f1": val_f1})
        bar.set_postfix(loss=f"{total / len(y):.3f}", val_f1=f"{val_f1:.3f}", best=f"{max(best_f1, val_f1):.3f}")
        if val_f1 > best_f1:
            best_f1, best_epoch = val_f1, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= settings.patience:
            break
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    predicted = predict_proba(net, val.windows).argmax(axis=1)
    metrics = classification_metrics(val.labels, predicted, labels)
    metrics["best_epoch"] = best_epoch
    metrics["epochs_run"] = len(history)
    return TrainResult(net, metrics, history)


def train(
    settings: TrainSettings,
    out: Path,
    *,
    extra_tracks: Sequence[LabelledTrack] = (),
    labels: Sequence[str] = LABELS,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Simulate, split by track, fit, evaluate and write the checkpoint to ``out``.

    Args:
        settings: data, network and optimiser settings (stored in the checkpoint).
        out: checkpoint path.
        extra_tracks: operator-labelled tracks (``--from-db``), split by track like the rest.
        labels: the label set; every operator label must be in it.
        command: the command line, recorded so the checkpoint says how to reproduce it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: bit-for-bit reproducible, and fast enough here
    try:
        return _train(settings, out, extra_tracks, labels, command, progress, log)
    finally:
        torch.set_num_threads(threads)


def _train(
    settings: TrainSettings,
    out: Path,
    extra_tracks: Sequence[LabelledTrack],
    labels: Sequence[str],
    command: str,
    progress: bool,
    log: Callable[[str], None],
) -> TrainResult:
    started = time.monotonic()
    rng = np.random.default_rng(settings.seed)
    log(f"simulating {settings.tracks_per_behaviour} tracks x {len(BEHAVIOUR_LABELS)} behaviours "
        f"(seed {settings.seed})")
    tracks = simulated_tracks(settings, rng)
    first_extra = len(tracks)
    tracks += [replace(t, group=first_extra + t.group) for t in extra_tracks]
    dataset = build_dataset(tracks, settings.spec, labels, settings.windows_per_track, rng)
    train_index, val_index = split_by_group(dataset.groups, settings.val_fraction, rng)
    train_set, val_set = dataset.take(train_index), dataset.take(val_index)
    counts = np.bincount(dataset.labels, minlength=len(labels))
    log(f"{len(dataset)} windows from {len(np.unique(dataset.groups))} tracks "
        f"({', '.join(f'{label} {n}' for label, n in zip(labels, counts, strict=True))}); "
        f"train {len(train_set)}, validation {len(val_set)} (split by track)")
    result = fit(train_set, val_set, settings, labels, progress=progress)
    elapsed = time.monotonic() - started
    # Nothing machine- or time-dependent (like the elapsed time) goes in: the same seed on the
    # same torch build must give the same checkpoint, digest included.
    training: dict[str, Any] = {
        "settings": _jsonable(asdict(settings)),
        "windows": {"train": len(train_set), "validation": len(val_set)},
        "operator_tracks": len(extra_tracks),
        "history": result.history,
        "command": command,
        "torch": torch.__version__,
    }
    sha256 = save_checkpoint(
        out, result.net, labels=tuple(labels), spec=settings.spec,
        architecture=settings.architecture, metrics=result.metrics, training=training,
    )
    log(format_metrics(result.metrics))
    log(f"best epoch {result.metrics['best_epoch']} of {result.metrics['epochs_run']}, "
        f"{elapsed:.0f} s")
    log(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB), sha256 {sha256}")
    return TrainResult(result.net, result.metrics, result.history, sha256)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
