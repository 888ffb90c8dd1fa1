"""The daemon's counters at one moment: what the log line, ``/metrics``,
``{prefix}/stats/{instance}`` and ``monitor bench`` read. Every field is a copy; reading it takes no lock of a running stage."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.clips.writer import ClipStats
from monitor.detect.regions import RegionStats
from monitor.detect.worker import WorkerStats
from monitor.ingest.source import SourceStats
from monitor.mqtt.outbox import OutboxStats
from monitor.store.writer import WriterStats


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """One camera's processing after detection, since start.

    Attributes:
        detections: detector boxes given to the tracker.
        alerts: alerts emitted (start, update, end).
        behaviour_s: seconds in the behaviour decider (the temporal model's forward passes).
        behaviour_steps: decider calls that had tracks to score.
    """

    detections: int
    alerts: int
    behaviour_s: float
    behaviour_steps: int


@dataclass(frozen=True, slots=True)
class DaemonStats:
    """A snapshot of the running daemon's counters.

    Attributes:
        sources: camera name -> its capture counters.
        regions: what the detector was given, per camera and by input shape; None before start.
        worker: the inference loop's counters; None before start.
        pipelines: camera name -> its processing counters.
        statuses: camera name -> ``online``, ``offline`` or ``disabled`` (detection off), as
            published on ``{prefix}/{camera}/status``.
        streaming: camera name -> its frames arrive (whether detection is on or off).
        writer: the store queue; None before start.
        outbox: the MQTT publisher; None before start.
        uptime_s: seconds since the daemon started.
        clips: the clip writer; None when clips are off.
    """

    sources: dict[str, SourceStats]
    regions: RegionStats | None
    worker: WorkerStats | None
    pipelines: dict[str, PipelineStats] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    streaming: dict[str, bool] = field(default_factory=dict)
    writer: WriterStats | None = None
    outbox: OutboxStats | None = None
    uptime_s: float = 0.0
    clips: ClipStats | None = None
