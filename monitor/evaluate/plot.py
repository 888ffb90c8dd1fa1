"""A timeline picture of ``monitor eval``: per clip, the labelled events and each decider's.

One row group per clip, one lane per source (the labels, then each decider), one bar per event,
coloured by kind. False alarms and misses are visible at a glance, which a table of counts hides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from monitor.evaluate.annotations import Interval
from monitor.types import KIND_INFO

KIND_COLOURS = {kind.value: info.colour for kind, info in KIND_INFO.items() if info.evaluated}


def plot_timeline(
    path: Path,
    clips: Sequence[str],
    truth: Sequence[Interval],
    predicted: Mapping[str, Mapping[str, Sequence[Interval]]],
    *,
    durations: Mapping[str, float] | None = None,
) -> None:
    """Write a PNG timeline.

    Args:
        path: the PNG to write.
        clips: clip names, top to bottom.
        truth: labelled intervals.
        predicted: clip -> decider -> predicted intervals.
        durations: clip -> length in seconds (for the grey clip span), optional.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    deciders = sorted({d for per_clip in predicted.values() for d in per_clip})
    lanes = ["labelled", *deciders]
    rows = len(clips) * (len(lanes) + 1)
    figure, axes = plt.subplots(figsize=(11, max(3.0, rows * 0.22)))
    labels, ticks = [], []
    y = 0.0
    for clip in clips:
        sources: dict[str, Sequence[Interval]] = {"labelled": [t for t in truth if t.clip == clip]}
        sources.update(predicted.get(clip, {}))
        for lane in lanes:
            if durations and clip in durations:
                axes.barh(y, durations[clip], left=0, height=0.8, color="#eeeeee")
            for interval in sources.get(lane, []):
                axes.barh(y, interval.end - interval.start, left=interval.start, height=0.8,
                          color=KIND_COLOURS.get(interval.kind, "grey"))
            labels.append(f"{clip}  {lane}" if lane == "labelled" else lane)
            ticks.append(y)
            y += 1
        y += 1
    axes.set_yticks(ticks, labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("seconds from the clip's first frame")
    axes.legend(
        handles=[Patch(color=c, label=k) for k, c in KIND_COLOURS.items()],
        loc="upper right", fontsize=8,
    )
    axes.set_title("monitor eval: labelled events and each decider's events")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
