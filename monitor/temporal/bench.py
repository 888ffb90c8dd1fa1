"""``monitor bench temporal``: CPU cost of one camera-step of the temporal decider.

A camera-step is what the daemon does per processed frame of a camera: build the feature window
of every live track, run them through the network as one batch, and feed the decision layer.
Measured on one torch thread (the target: at most 2 ms for 20 tracks), with the shipped or a
given checkpoint and simulated tracks, so it needs no footage.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from monitor.config import TemporalConfig
from monitor.temporal.checkpoint import Checkpoint
from monitor.temporal.deciders import BehaviourDecider, TemporalScorer
from monitor.types import TrackView
from monitor.temporal.simulate import BEHAVIOURS, SimulationSettings, simulate_track


@dataclass(frozen=True, slots=True)
class StepCost:
    tracks: int
    median_ms: float
    p95_ms: float
    score_ms: float  # feature windows + the batched forward pass, without decisions (median)


def measure(checkpoint: Checkpoint, tracks: int, repeats: int = 200, seed: int = 0) -> StepCost:
    """Time ``repeats`` camera-steps of ``tracks`` simulated tracks on one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(seed)
        sim = SimulationSettings(duration_s=12.0)
        histories = [
            simulate_track(BEHAVIOURS[i % len(BEHAVIOURS)], rng, sim).observations
            for i in range(tracks)
        ]
        views = [TrackView(i, h) for i, h in enumerate(histories)]
        decider = BehaviourDecider(TemporalScorer(checkpoint), TemporalConfig())
        scorer = TemporalScorer(checkpoint)
        for _ in range(10):  # warm-up: first calls allocate
            decider.step(views, sim.width, sim.height)
        steps, scoring = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            decider.step(views, sim.width, sim.height)
            steps.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            scorer.score(views, sim.width, sim.height)
            scoring.append((time.perf_counter() - started) * 1000)
        steps.sort()
        return StepCost(
            tracks,
            round(statistics.median(steps), 3),
            round(steps[int(0.95 * (len(steps) - 1))], 3),
            round(statistics.median(scoring), 3),
        )
    finally:
        torch.set_num_threads(threads)
