"""Metrics and the stats topic from a synthetic snapshot (the daemon's are in test_daemon.py)."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.detect.regions import RegionStats
from monitor.detect.worker import WorkerStats
from monitor.ingest.source import SourceStats
from monitor.mqtt.outbox import OutboxStats
from monitor.observe.metrics import MetricsServer
from monitor.observe.stats import DaemonStats, PipelineStats
from monitor.observe.stats_topic import StatsReport
from monitor.store.writer import WriterStats


def snapshot(scale: int, uptime_s: float) -> DaemonStats:
    """Counters of two cameras after ``scale`` units of work."""
    return DaemonStats(
        sources={
            "gate": SourceStats(25 * scale, 3 * scale, scale, 1, "streaming", 0.04, stalls=2),
            "yard": SourceStats(0, 0, 0, 4, "backoff", None),
        },
        regions=RegionStats(whole={"gate": scale}, regions={"gate": scale}, skipped={},
                            held={"gate": 0}, inputs={(1, 640, 640): 2 * scale},
                            inference_s=0.2 * scale, pixels=2 * scale * 640 * 640),
        worker=WorkerStats(batches=2 * scale, frames_inferred=2 * scale, errors=0,
                           last_batch_ms=100.0),
        pipelines={"gate": PipelineStats(5 * scale, scale, 0.002 * scale, scale)},
        statuses={"gate": "online", "yard": "offline"},
        streaming={"gate": True, "yard": False},
        writer=WriterStats(queued=3, capacity=10_000,
                           events_started={("gate", "presence"): scale}, committed=scale),
        outbox=OutboxStats(published=scale, delivered=scale - 1, in_flight=1, dropped=0),
        uptime_s=uptime_s,
    )


def samples(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(server.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_stage_is_in_the_scrape() -> None:
    server = MetricsServer(lambda: snapshot(10, 60.0), lambda: 7)
    server.observe_inference(0.3, (1, 640, 640))
    server.observe_inference(1.2, (2, 640, 640))
    got = samples(server)
    gate = (("camera", "gate"),)
    assert got[("monitor_camera_frames_read_total", gate)] == 250
    assert got[("monitor_camera_frames_due_total", gate)] == 30
    assert got[("monitor_camera_frames_dropped_total", gate)] == 10
    assert got[("monitor_camera_stalls_total", gate)] == 2
    assert got[("monitor_camera_online", gate)] == 1
    assert got[("monitor_camera_online", (("camera", "yard"),))] == 0
    assert ("monitor_camera_last_frame_age_seconds", (("camera", "yard"),)) not in got
    assert got[("monitor_camera_frames_processed_total", (("camera", "gate"), ("how", "regions")))] == 10
    assert got[("monitor_detector_inputs_total", (("batch", "1"), ("height", "640"),
                                                  ("width", "640")))] == 20
    assert got[("monitor_behaviour_seconds_count", gate)] == 10
    assert got[("monitor_events_total", (("camera", "gate"), ("kind", "presence")))] == 10
    assert got[("monitor_outbox_unsent", ())] == 7
    assert got[("monitor_alerts_in_flight", ())] == 1
    assert got[("monitor_inference_seconds_count", ())] == 2
    assert got[("monitor_inference_seconds_bucket", (("le", "0.35"),))] == 1
    assert got[("monitor_inference_seconds_bucket", (("le", "1.5"),))] == 2


def test_an_unreadable_outbox_leaves_its_gauge_out_not_the_scrape() -> None:
    got = samples(MetricsServer(lambda: snapshot(1, 1.0), lambda: None))
    assert ("monitor_outbox_unsent", ()) not in got
    assert got[("monitor_uptime_seconds", ())] == 1.0


def test_served_over_http_and_a_taken_port_is_an_error() -> None:
    server = MetricsServer(lambda: snapshot(1, 1.0), lambda: 0)
    server.start("127.0.0.1", 0)
    try:
        assert server.port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            assert b"monitor_camera_frames_read_total" in r.read()
        with pytest.raises(OSError):
            MetricsServer(lambda: snapshot(1, 1.0), lambda: 0).start("127.0.0.1", server.port)
    finally:
        server.stop()
    with socket.socket() as probe:  # the port is free again after stop()
        probe.bind(("127.0.0.1", 0))


def test_stats_rates_are_over_the_interval() -> None:
    report = StatsReport("nvr")
    first = json.loads(report.payload(snapshot(10, 10.0), unsent=0))
    second = json.loads(report.payload(snapshot(30, 30.0), unsent=2))
    assert first["interval_s"] == 10.0 and second["interval_s"] == 20.0
    gate = second["cameras"]["gate"]
    assert gate["status"] == "online"
    assert gate["camera_fps"] == 25.0  # (750 - 250) frames / 20 s
    assert gate["detection_fps"] == 2.0  # (60 - 20) answered / 20 s
    assert gate["dropped_per_s"] == 1.0 and gate["stalls"] == 2
    assert gate["behaviour_ms"] == 2.0
    assert second["cameras"]["yard"] == {
        "status": "offline", "camera_fps": 0.0, "detection_fps": 0.0, "dropped_per_s": 0.0,
        "reconnects": 4, "stalls": 0, "behaviour_ms": None}
    assert second["detector"] == {"inference_ms": 100.0, "frames_per_s": 2.0, "errors": 0}
    assert second["store"] == {"queued": 3, "capacity": 10_000, "unsent": 2}
    assert second["alerts"] == {"published": 30, "delivered": 29, "failed": 0}
    assert second["instance"] == "nvr"


def test_the_grafana_dashboard_reads_metrics_that_exist() -> None:
    import re
    from pathlib import Path

    dashboard = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "monitor.json"
    exprs = [t["expr"] for panel in json.loads(dashboard.read_text())["panels"]
             for t in panel["targets"]]
    wanted = {name for expr in exprs for name in re.findall(r"monitor_[a-z_]+", expr)}
    server = MetricsServer(lambda: snapshot(10, 60.0), lambda: 0)
    server.observe_inference(0.3, (1, 640, 640))
    exported = {name for name, _ in samples(server)}
    assert wanted and wanted <= exported, wanted - exported
