"""Ingest: one capture thread per camera, handing its newest frame to the inference worker."""

from monitor.ingest.latest import LatestFrame
from monitor.ingest.source import CameraSource, SourceState, SourceStats

__all__ = ["CameraSource", "LatestFrame", "SourceState", "SourceStats"]
