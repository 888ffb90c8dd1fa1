"""A picture of one ``monitor bench`` report: throughput side by side, latency over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; the daemon's machines have no display
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen

from monitor.redact import redact_url  # noqa: E402


def plot_report(report: dict[str, Any], out: Path) -> None:
    """Left: frames per second each side served, against what the cameras sent. Right: the
    naive loop's frame latency and the daemon's alert latency over the run."""
    monitor, naive = report["monitor"], report.get("naive")
    fps, cameras = report["native_fps"], len(monitor["cameras"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = ["cameras send", "monitor considers", "monitor infers"]
    values = [fps * cameras, monitor["processed_fps"], monitor["detection_fps"]]
    if naive is not None:
        names.append("naive infers")
        values.append(naive["processed_fps"])
    left.bar(names, values, color=["#999999", "#2b7bba", "#86b6de", "#d95f02"][: len(values)])
    left.set_ylabel("frames per second, all cameras")
    url = report["settings"].get("source_url")
    scene = redact_url(url) if url else Path(report["scene"]).name
    left.set_title(f"{cameras} camera(s), {scene}")
    left.tick_params(axis="x", labelsize=8)
    if naive is not None:
        for camera in sorted({p["camera"] for p in naive["timeline"]}):
            points = [p for p in naive["timeline"] if p["camera"] == camera]
            right.plot([p["elapsed_s"] for p in points], [p["latency_s"] for p in points],
                       color="#d95f02", alpha=0.6, lw=1,
                       label="naive: frame latency" if camera == "cam1" else None)
        lost = [r for r in naive["cameras"] if r.get("stream_lost_at_s") is not None]
        for i, row in enumerate(lost):  # where a camera's stream broke, at its latency by then
            last = [p["latency_s"] for p in naive["timeline"] if p["camera"] == row["camera"]]
            right.scatter([row["stream_lost_at_s"]], [last[-1] if last else 0.0], marker="x",
                          s=60, color="k", zorder=3, label="naive: stream lost" if i == 0 else None)
    timeline = report["daemon_raw"]["timeline"]
    right.scatter([p["elapsed_s"] for p in timeline], [p["latency_s"] for p in timeline],
                  s=10, color="#2b7bba", label="monitor: alert latency (confirming frame to MQTT)")
    right.axhline(1.0, color="k", ls=":", lw=1)
    right.set_xlabel("seconds into the run")
    right.set_ylabel("latency, s")
    right.set_yscale("symlog", linthresh=1.0)
    right.set_ylim(bottom=0)
    right.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def plot_search(report: dict[str, Any], out: Path) -> None:
    """``--find-max``: per camera count tried, the cameras it kept in real time (a bar on the
    diagonal is all of them), with the largest real-time count marked."""
    trials = report["trials"]
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    counts = [t["cameras"] for t in trials]
    axes.bar(counts, [t["realtime_cameras"] for t in trials],
             color=["#2b7bba" if t["realtime"] else "#d95f02" for t in trials], width=0.7)
    top = max(counts) + 1
    axes.plot([0, top], [0, top], color="#999999", ls=":", lw=1, label="every camera")
    best = report["largest_realtime_cameras"]
    axes.axvline(best, color="k", lw=1, label=f"largest real-time count: {best}")
    axes.set_xlabel("cameras playing the scene")
    axes.set_ylabel("cameras served in real time")
    axes.set_title(f"{Path(report['scene']).name}, {report['settings']['seconds']:g} s per try "
                   "(blue: real time, orange: not)", fontsize=9)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
