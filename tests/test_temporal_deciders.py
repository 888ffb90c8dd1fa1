"""Behaviour deciders wired into a camera pipeline: simulated tracks in, fall/running events out,
with their evidence; operator labels back into training data."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.config import EventsConfig, TemporalConfig
from monitor.events.evidence import BehaviourEvidence, TrackRecord
from monitor.events.lifecycle import EventLifecycle
from monitor.types import Observation
from monitor.events.report import render_one
from monitor.events.snapshot import SnapshotWriter
from monitor.pipeline import CameraPipeline
from monitor.store import open_database
from monitor.store.queries import get_event
from monitor.temporal.checkpoint import load_checkpoint
from monitor.temporal.deciders import make_decider, packaged_checkpoint
from monitor.temporal.simulate import SimulationSettings, simulate_track
from monitor.temporal.train import TrainSettings, build_dataset, labelled_tracks
from monitor.temporal.features import FeatureSpec
from monitor.types import Alert, AlertType, Box, Detection, EventKind, Frame, Track, Tracks
from tests.builders import EPOCH

WIDTH, HEIGHT = 768, 576
IMAGE = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)


class Collect:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def ended(self, kind: EventKind) -> list[Alert]:
        return [a for a in self.alerts if a.type is AlertType.END and a.event.kind is kind]


def run_track(
    observations: Sequence[Observation], decider: str, tmp_path: Path, *, track_id: int = 1
) -> Collect:
    """Feed one track, frame by frame, through lifecycle + decider; close at the end."""
    config = TemporalConfig(decider=decider)  # type: ignore[arg-type]
    checkpoint = load_checkpoint(packaged_checkpoint()) if decider == "temporal" else None
    sink = Collect()
    lifecycle = EventLifecycle("cam1", ["person"], [], EventsConfig(end_after_s=3))
    pipeline = CameraPipeline(
        tracker=None,  # type: ignore[arg-type]  # process_tracks skips the tracker
        lifecycle=lifecycle,
        snapshots=SnapshotWriter(tmp_path, 80),
        sink=sink,
        decider=make_decider(config, checkpoint),
    )
    for o in observations:
        frame = Frame("cam1", o.frame_index, IMAGE, EPOCH + timedelta(seconds=o.monotonic), o.monotonic)
        detection = Detection(o.box, o.score, "person", o.class_name)
        pipeline.process_tracks(Tracks(frame, (Track("cam1", track_id, detection),)))
    pipeline.close()
    return sink


def simulated(behaviour: str, seed: int, **settings: float) -> tuple[Observation, ...]:
    sim = SimulationSettings(duration_s=14.0, fps=5.0, miss_rate=(0.0, 0.0), **settings)  # type: ignore[arg-type]
    return simulate_track(behaviour, np.random.default_rng(seed), sim).observations


@pytest.mark.parametrize("decider", ["rules", "temporal"])
def test_a_fall_is_one_event_that_lasts_while_the_person_is_down(decider: str, tmp_path: Path) -> None:
    track = simulate_track(
        "fall", np.random.default_rng(5), SimulationSettings(duration_s=16.0, miss_rate=(0.0, 0.0))
    )
    sink = run_track(track.observations, decider, tmp_path)
    falls = sink.ended(EventKind.FALL)
    assert len(falls) == 1
    event = falls[0].event
    started = (event.start_time - EPOCH).total_seconds()
    assert track.event_start_s is not None
    assert track.event_start_s - 0.5 <= started <= track.event_start_s + 2.5
    # Lying until the track ends: the event ends with it, not when the drop leaves the window.
    assert event.end_time == EPOCH + timedelta(seconds=track.observations[-1].monotonic)
    assert not sink.ended(EventKind.RUNNING)


@pytest.mark.parametrize("decider", ["rules", "temporal"])
def test_running_is_an_event_walking_is_not(decider: str, tmp_path: Path) -> None:
    # Seed 1 runs across the view; a runner heading at the camera shows little pixel speed.
    run = run_track(simulated("run", 1, person_px=(60.0, 80.0)), decider, tmp_path)
    assert len(run.ended(EventKind.RUNNING)) == 1
    walk = run_track(simulated("walk", 2), decider, tmp_path)
    assert not walk.ended(EventKind.RUNNING) and not walk.ended(EventKind.FALL)


def test_something_lying_there_all_along_is_a_fall_only_per_frame(tmp_path: Path) -> None:
    """vtest.avi's yellow object: the per-frame baseline alerts on it, again and again; the
    sequence deciders see that nothing ever dropped."""
    lying = simulated("lie", 9)
    assert sum(o.class_name == "Fall" for o in lying) > len(lying) / 2
    assert len(run_track(lying, "per_frame", tmp_path).ended(EventKind.FALL)) >= 1
    assert not run_track(lying, "rules", tmp_path).ended(EventKind.FALL)
    assert not run_track(lying, "temporal", tmp_path).ended(EventKind.FALL)


def test_a_verdict_waits_for_confirmation_instead_of_being_lost(tmp_path: Path) -> None:
    """A track confirmed late (low scores first) still gets its fall event."""
    track = simulate_track("fall", np.random.default_rng(5), SimulationSettings(duration_s=16.0))
    weak = [
        Observation(o.at, o.monotonic, o.frame_index, o.box, 0.3 if i < 6 else o.score, o.class_name, o.zones)
        for i, o in enumerate(track.observations)
    ]
    assert len(run_track(weak, "rules", tmp_path).ended(EventKind.FALL)) == 1


def test_evidence_names_model_probabilities_rules_and_trigger(tmp_path: Path) -> None:
    track = simulate_track("fall", np.random.default_rng(5), SimulationSettings(duration_s=16.0))
    event = run_track(track.observations, "temporal", tmp_path).ended(EventKind.FALL)[0].event
    behaviour = event.evidence["behaviour"]
    shipped = load_checkpoint(packaged_checkpoint())
    assert behaviour["decider"] == "temporal"
    assert behaviour["scorer"]["sha256"] == shipped.sha256
    assert behaviour["scorer"]["name"] == "default.pt"
    probabilities = behaviour["probabilities"]
    assert 1 <= len(probabilities) <= TemporalConfig().evidence_steps
    assert set(probabilities[-1]) == {"at", "normal", "loitering", "running", "fall"}
    assert behaviour["trigger"]["frames"] and behaviour["trigger"]["probability"] >= 0.7
    assert {"speed_hps", "aspect", "max_recent_aspect"} <= set(behaviour["rules"])
    typed = BehaviourEvidence.from_json(behaviour)
    assert typed.to_json() == behaviour  # what is stored reads back to the same value
    assert typed.scorer["sha256"] == shipped.sha256
    text = render_one(event)
    assert shipped.sha256[:12] in text and "fall" in text and "trigger" in text


def test_ended_events_keep_the_track_for_training(tmp_path: Path) -> None:
    observations = simulated("walk", 3)
    presence = run_track(observations, "off", tmp_path).ended(EventKind.PRESENCE)[0].event
    record = presence.evidence["track"]
    assert record["frame_size"] == [WIDTH, HEIGHT]
    rebuilt = TrackRecord.from_json(record).observations
    assert len(rebuilt) == len(observations)
    assert rebuilt[-1].box == Box(*observations[-1].box.as_list())
    elapsed = observations[-1].monotonic - observations[0].monotonic
    assert (rebuilt[-1].at - rebuilt[0].at).total_seconds() == pytest.approx(elapsed, abs=1e-3)


def test_label_an_event_then_train_from_the_database(tmp_path: Path) -> None:
    """monitor label EVENT_ID KIND stores the label; train --from-db turns it into windows."""
    from monitor.mqtt.topics import outbox_message
    from monitor.store.writer import EventWriter

    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = open_database(url)
    lying = simulated("lie", 9)
    sink = run_track(lying, "per_frame", tmp_path)
    false_fall = sink.ended(EventKind.FALL)[0].event
    writer = EventWriter(engine)
    writer.start()
    for alert in sink.alerts:
        writer.record(alert, outbox_message("monitor", alert))
    assert writer.flush(10)
    writer.stop(5)

    cli = [sys.executable, "-m", "monitor.cli"]
    done = subprocess.run([*cli, "label", false_fall.id, "normal", "--db", url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert get_event(engine, false_fall.id).operator_label == "normal"  # type: ignore[union-attr]
    bad = subprocess.run([*cli, "label", false_fall.id, "dancing", "--db", url],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown kind 'dancing'" in bad.stderr
    missing = subprocess.run([*cli, "label", "no-such-id", "fall", "--db", url],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no event with id no-such-id" in missing.stderr

    from monitor.store.queries import labelled_events

    tracks = labelled_tracks(labelled_events(engine), TrainSettings())
    assert len(tracks) == 1
    spec = FeatureSpec(window=40, step_s=0.2)
    data = build_dataset(tracks, spec, ("normal", "loitering", "running", "fall"), 50,
                         np.random.default_rng(0))
    assert len(data) > 0 and set(data.labels) == {0}  # all windows say "normal"


def test_a_labelled_fall_teaches_the_drop_not_the_lying(tmp_path: Path) -> None:
    """Windows of an operator-labelled fall: `fall` only where the drop is in view; windows that
    show only lying are `normal`, as for simulated falls."""
    import dataclasses

    track = simulate_track(
        "fall", np.random.default_rng(5), SimulationSettings(duration_s=30.0, miss_rate=(0.0, 0.0))
    )
    sink = run_track(track.observations, "rules", tmp_path)
    fall = dataclasses.replace(sink.ended(EventKind.FALL)[0].event, operator_label="fall")
    presence = dataclasses.replace(sink.ended(EventKind.PRESENCE)[0].event, operator_label="normal")
    tracks = labelled_tracks([fall, presence], TrainSettings())
    assert len({t.group for t in tracks}) == 1  # one person: one side of the split
    labels = {}
    for o in tracks[0].observations:
        labels[round(o.monotonic, 1)] = tracks[0].label_at(o.monotonic)
    start = (fall.start_time - tracks[0].observations[0].at).total_seconds()
    assert labels[round(start + 2.0, 1)] == "fall"
    assert labels[round(start + 12.0, 1)] == "normal"       # 8 s window: only lying left
    assert labels[round(start - 1.0, 1)] is None            # before the event: not labelled
