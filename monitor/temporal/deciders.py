"""Behaviour deciders: one camera's live tracks -> fall and running verdicts, with evidence.

Three deciders share one decision layer (hysteresis and minimum duration, ``decide.py``) and
differ only in how they score a track at each step:

* ``temporal``: the sequence model. All tracks seen in a frame go through it as one batch;
* ``rules``: thresholds a person would write: running = foot speed above N body heights per
  second; fall = an upright box turned lying within a few seconds;
* ``per_frame``: a fall whenever the detector labels the box ``Fall`` — what a per-frame NVR
  alert does, kept as the baseline ``monitor eval`` compares against.

Every verdict carries its evidence: the decider, the model and its SHA-256, per-class
probabilities over the last steps, the rule values, and the frames that triggered it.
A fall starts only while the person is down (box height/width at or below ``lying_aspect``) and
stays open as long as they are, because the drop itself soon leaves the model's window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from monitor.config import TemporalConfig
from monitor.events.evidence import BehaviourEvidence, Trigger
from monitor.temporal.checkpoint import Checkpoint, load_checkpoint
from monitor.temporal.decide import DecisionConfig, Transition, VerdictTracker
from monitor.temporal.features import track_window
from monitor.temporal.model import predict_proba
from monitor.types import EventKind, Observation, TrackView, Verdict, kinds_where

BEHAVIOUR_KINDS: tuple[str, ...] = kinds_where(behaviour=True)
FALL, RUNNING = EventKind.FALL.value, EventKind.RUNNING.value
"""Verdicts that become events. Loitering stays the dwell-time rule of the event lifecycle (its
threshold is the operator's to set); the model's loitering probability is kept as evidence."""


@dataclass(frozen=True, slots=True)
class ScorerTraits:
    """How the shared decision layer treats a scorer's output.

    Attributes:
        probabilistic: scores are probabilities, decided with the configured hysteresis
            (``enter_prob``/``exit_prob``); otherwise they are 0 or 1, decided at 0.5.
        smoothed: a verdict must hold ``min_duration_s``; the per-frame baseline has none.
        sequence: judges shape over time, so a fall starts only while the box is lying and
            stays open while it is.
        needs_history: only tracks seen for ``min_history_s`` are scored.
    """

    probabilistic: bool
    smoothed: bool
    sequence: bool
    needs_history: bool


class Scorer(Protocol):
    name: str
    traits: ScorerTraits

    def score(
        self, tracks: Sequence[TrackView], width: int, height: int
    ) -> list[dict[str, float]]: ...

    def describe(self) -> dict[str, Any]: ...


def aspect(observation: Observation) -> float:
    """Box height / width."""
    box = observation.box
    return (box.y2 - box.y1) / max(box.x2 - box.x1, 1e-6)


def rule_values(history: Sequence[Observation], config: TemporalConfig) -> dict[str, float]:
    """The numbers the rules decide on, also kept as evidence for every decider.

    speed_hps: foot-point speed over the last ``speed_window_s``, in body heights per second.
    aspect: the newest box's height/width.
    max_recent_aspect: the tallest height/width within ``fall_within_s`` before the newest box.
    """
    last = history[-1]
    recent = [o for o in history if last.monotonic - o.monotonic <= config.speed_window_s]
    first = recent[0]
    elapsed = last.monotonic - first.monotonic
    speed = 0.0
    if elapsed > 0:
        (x0, y0), (x1, y1) = first.box.foot, last.box.foot
        mean_height = float(np.mean([o.box.y2 - o.box.y1 for o in recent]))
        speed = float(np.hypot(x1 - x0, y1 - y0)) / max(mean_height, 1.0) / elapsed
    before = [
        aspect(o) for o in history[:-1] if last.monotonic - o.monotonic <= config.fall_within_s
    ]
    return {
        "speed_hps": round(speed, 3),
        "aspect": round(aspect(last), 3),
        "max_recent_aspect": round(max(before, default=aspect(last)), 3),
    }


class TemporalScorer:
    """The sequence model: one batch per camera step."""

    name = "temporal"
    traits = ScorerTraits(probabilistic=True, smoothed=True, sequence=True, needs_history=True)

    def __init__(self, checkpoint: Checkpoint) -> None:
        self._checkpoint = checkpoint

    def score(
        self, tracks: Sequence[TrackView], width: int, height: int
    ) -> list[dict[str, float]]:
        if not tracks:
            return []
        spec = self._checkpoint.spec
        windows = np.stack([track_window(t.history, width, height, spec) for t in tracks])
        probabilities = predict_proba(self._checkpoint.net, windows)
        labels = self._checkpoint.labels
        return [
            {label: float(p) for label, p in zip(labels, row, strict=True)}
            for row in probabilities
        ]

    def describe(self) -> dict[str, Any]:
        c = self._checkpoint
        return {
            "name": c.name,
            "sha256": c.sha256,
            "architecture": c.architecture.kind,
            "window": c.spec.window,
            "step_s": c.spec.step_s,
        }


class RuleScorer:
    """Hand-written thresholds; probabilities are 0 or 1."""

    name = "rules"
    traits = ScorerTraits(probabilistic=False, smoothed=True, sequence=True, needs_history=False)

    def __init__(self, config: TemporalConfig) -> None:
        self._config = config

    def score(
        self, tracks: Sequence[TrackView], width: int, height: int
    ) -> list[dict[str, float]]:
        config = self._config
        scores = []
        for track in tracks:
            values = rule_values(track.history, config)
            fell = (
                values["aspect"] <= config.lying_aspect
                and values["max_recent_aspect"] >= config.upright_aspect
            )
            running = values["speed_hps"] >= config.running_speed_hps
            scores.append({FALL: float(fell), RUNNING: float(running)})
        return scores

    def describe(self) -> dict[str, Any]:
        c = self._config
        return {
            "running_speed_hps": c.running_speed_hps,
            "upright_aspect": c.upright_aspect,
            "lying_aspect": c.lying_aspect,
            "fall_within_s": c.fall_within_s,
        }


class PerFrameScorer:
    """The detector's own label, frame by frame: a ``Fall`` box is a fall."""

    name = "per_frame"
    # A per-frame alert is what that baseline is: no smoothing at all.
    traits = ScorerTraits(
        probabilistic=False, smoothed=False, sequence=False, needs_history=False
    )

    def score(
        self, tracks: Sequence[TrackView], width: int, height: int
    ) -> list[dict[str, float]]:
        return [{FALL: float(t.history[-1].class_name == "Fall")} for t in tracks]

    def describe(self) -> dict[str, Any]:
        return {"fall_class": "Fall"}


@dataclass(slots=True)
class _TrackMemory:
    steps: deque[tuple[Observation, dict[str, float]]]


class BehaviourDecider:
    """Scores a camera's tracks each step and turns the scores into verdicts.

    Args:
        scorer: the temporal model, the rules or the per-frame baseline.
        config: the ``[temporal]`` section.
        kinds: the verdicts that become events.
    """

    def __init__(
        self,
        scorer: Scorer,
        config: TemporalConfig,
        kinds: Sequence[str] = BEHAVIOUR_KINDS,
    ) -> None:
        self._scorer = scorer
        self._config = config
        self._kinds = tuple(kinds)
        traits = scorer.traits
        self._verdicts = VerdictTracker(
            DecisionConfig(
                enter_prob=config.enter_prob if traits.probabilistic else 0.5,
                exit_prob=config.exit_prob if traits.probabilistic else 0.5,
                min_duration_s=config.min_duration_s if traits.smoothed else 0.0,
            )
        )
        self._memory: dict[int, _TrackMemory] = {}

    @property
    def name(self) -> str:
        return self._scorer.name

    def step(self, tracks: Sequence[TrackView], width: int, height: int) -> list[Verdict]:
        """Score the tracks seen in this frame (one batch) and return the verdicts that changed."""
        # A sequence model needs a sequence: a track seen for less than min_history_s is a few
        # mostly-missing steps, on which the network is confident and wrong now and then.
        young = self._scorer.traits.needs_history
        tracks = [
            t for t in tracks
            if t.history and not (
                young
                and t.history[-1].monotonic - t.history[0].monotonic < self._config.min_history_s
            )
        ]
        verdicts: list[Verdict] = []
        for track, scores in zip(tracks, self._scorer.score(tracks, width, height), strict=True):
            last = track.history[-1]
            memory = self._memory.setdefault(
                track.track_id, _TrackMemory(deque(maxlen=self._config.evidence_steps))
            )
            memory.steps.append((last, scores))
            wanted = {k: scores.get(k, 0.0) for k in self._kinds}
            down = aspect(last) <= self._config.lying_aspect
            sequence = self._scorer.traits.sequence
            if sequence and not down and FALL in wanted:
                # A fall is a drop *then lying*: while the box is upright no fall starts, and one
                # that was open ends (the person got up) - whatever the window looks like.
                wanted[FALL] = 0.0
            held = frozenset({FALL}) if down and sequence else frozenset()
            for change in self._verdicts.update(track.track_id, wanted, last.monotonic, held=held):
                verdicts.append(self._verdict(track, change, memory))
        return verdicts

    def forget(self, live_track_ids: set[int], now: float) -> None:
        """Drop the state of tracks the lifecycle no longer follows (it ended their events)."""
        for track_id in [t for t in self._memory if t not in live_track_ids]:
            del self._memory[track_id]
            self._verdicts.forget(track_id, now)

    def _verdict(self, track: TrackView, change: Transition, memory: _TrackMemory) -> Verdict:
        since = next(
            (o for o in track.history if o.monotonic >= change.at - 1e-9), track.history[-1]
        )
        trigger = [o for o in track.history if o.monotonic >= since.monotonic]
        evidence = BehaviourEvidence(
            decider=self._scorer.name,
            scorer=self._scorer.describe(),
            rules=rule_values(track.history, self._config),
            probabilities=tuple((o.at, dict(s)) for o, s in memory.steps),
            trigger=Trigger(since.at, track.history[-1].at,
                            tuple(o.frame_index for o in trigger)[-50:], change.probability),
            decision={name: self._verdicts_config(name)
                      for name in ("enter_prob", "exit_prob", "min_duration_s")},
        )
        # Starts and ends both date from when their condition first held, not from when the
        # minimum duration confirmed it.
        at = since
        return Verdict(track.track_id, change.label, change.started, at, evidence)

    def _verdicts_config(self, name: str) -> float:
        return float(getattr(self._verdicts.config, name))



def packaged_checkpoint() -> Path:
    """The default model shipped inside the package (made by the command in docs/temporal.md)."""
    return Path(__file__).parent / "models" / "default.pt"


def load_configured_checkpoint(config: TemporalConfig) -> Checkpoint:
    """The checkpoint the ``[temporal]`` section names (the packaged one by default), verified
    and checked against the pinned SHA-256; raises CheckpointError."""
    return load_checkpoint(
        config.checkpoint or packaged_checkpoint(), expected_sha256=config.sha256
    )


def make_decider(config: TemporalConfig, checkpoint: Checkpoint | None = None) -> BehaviourDecider | None:
    """The configured decider for one camera (None when ``decider = "off"``).

    Args:
        checkpoint: the loaded model, shared by every camera (needed for ``temporal``).
    """
    if config.decider == "off":
        return None
    if config.decider == "temporal":
        if checkpoint is None:
            raise ValueError("the temporal decider needs a checkpoint")
        return BehaviourDecider(TemporalScorer(checkpoint), config)
    if config.decider == "rules":
        return BehaviourDecider(RuleScorer(config), config)
    return BehaviourDecider(PerFrameScorer(), config)
