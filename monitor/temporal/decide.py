"""The decision layer: per-track class probabilities over time -> stable verdicts.

A model's probabilities wobble from step to step; alerts must not. A verdict (say ``fall``)
starts only after its probability has stayed at or above ``enter_prob`` for ``min_duration_s``,
and ends only after it has stayed below ``exit_prob`` (lower: hysteresis) for ``min_duration_s``,
or when the track is gone. ``normal`` (the background class) never becomes a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DecisionConfig:
    """Thresholds of the decision layer.

    Attributes:
        enter_prob: probability a verdict needs to start.
        exit_prob: probability below which it may end (<= enter_prob).
        min_duration_s: how long either condition must hold.
        background: the label that is never a verdict.
    """

    enter_prob: float = 0.7
    exit_prob: float = 0.4
    min_duration_s: float = 0.6  # as [temporal] min_duration_s
    background: str = "normal"

    def __post_init__(self) -> None:
        if not 0.0 <= self.exit_prob <= self.enter_prob <= 1.0:
            raise ValueError(
                f"need 0 <= exit_prob ({self.exit_prob}) <= enter_prob ({self.enter_prob}) <= 1"
            )
        if self.min_duration_s < 0:
            raise ValueError(f"min_duration_s must be >= 0, got {self.min_duration_s}")


@dataclass(frozen=True, slots=True)
class Transition:
    """A verdict of one track started or ended.

    Attributes:
        track_id: the track.
        label: e.g. ``fall``.
        started: True for a start, False for an end.
        at: monotonic seconds: when the condition first held (start) or first failed (end).
        probability: the label's probability at the step that decided it.
    """

    track_id: int
    label: str
    started: bool
    at: float
    probability: float


@dataclass(slots=True)
class _State:
    active: bool = False
    pending_since: float | None = None  # when the opposite condition began to hold


class VerdictTracker:
    """Hysteresis and minimum duration for every (track, label) of one camera."""

    def __init__(self, config: DecisionConfig) -> None:
        self._config = config
        self._states: dict[tuple[int, str], _State] = {}

    @property
    def config(self) -> DecisionConfig:
        return self._config

    def active(self, track_id: int) -> list[str]:
        return sorted(
            label for (track, label), s in self._states.items() if track == track_id and s.active
        )

    def update(
        self,
        track_id: int,
        probabilities: Mapping[str, float],
        now: float,
        *,
        held: frozenset[str] = frozenset(),
    ) -> list[Transition]:
        """Feed one step of one track's probabilities; returns the verdicts that changed.

        Args:
            held: labels whose active verdicts must not end at this step whatever the
                probability says (a fall lasts while the person stays down, even after the drop
                has left the model's window).
        """
        changes: list[Transition] = []
        config = self._config
        for label, probability in probabilities.items():
            if label == config.background:
                continue
            state = self._states.setdefault((track_id, label), _State())
            if state.active and label in held:
                state.pending_since = None
                continue
            wants_change = (
                probability < config.exit_prob if state.active else probability >= config.enter_prob
            )
            if not wants_change:
                state.pending_since = None
                continue
            if state.pending_since is None:
                state.pending_since = now
            if now - state.pending_since >= config.min_duration_s:
                state.active = not state.active
                changes.append(
                    Transition(track_id, label, state.active, state.pending_since, probability)
                )
                state.pending_since = None
        return changes

    def forget(self, track_id: int, now: float) -> list[Transition]:
        """The track is gone: end its active verdicts now and drop its state."""
        changes = []
        for key in [k for k in self._states if k[0] == track_id]:
            if self._states.pop(key).active:
                changes.append(Transition(track_id, key[1], False, now, 0.0))
        return changes
