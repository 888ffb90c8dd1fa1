"""``monitor bench --find-max``: the search over camera counts, and a real (short) search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.bench.search import largest_realtime, next_count
from tests.fixtures.broker import Broker


def search(realtime_up_to: int, *, start: int = 4, most: int = 32,
           flaky: dict[int, bool] | None = None) -> tuple[list[int], int]:
    """Run the search against a machine that is real time up to ``realtime_up_to`` cameras."""
    trials: dict[int, bool] = {}
    tried = []
    while (count := next_count(trials, start, most)) is not None:
        assert count not in trials, f"{count} tried twice: {tried}"
        assert 1 <= count <= most
        tried.append(count)
        trials[count] = (flaky or {}).get(count, count <= realtime_up_to)
    return tried, largest_realtime(trials)


@pytest.mark.parametrize("answer", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 31, 32])
def test_the_search_finds_the_largest_real_time_count(answer: int) -> None:
    tried, found = search(answer)
    assert found == answer
    assert len(tried) <= 2 * 6  # doubling then bisecting: logarithmic in the answer


def test_the_search_stops_at_its_cap() -> None:
    tried, found = search(100, most=10)
    assert found == 10 and tried == [4, 8, 10]


def test_one_lucky_run_above_a_failure_does_not_raise_the_answer() -> None:
    # 6 failed (a noisy moment), 7 would pass: the answer stays below the failure.
    assert largest_realtime({4: True, 8: False, 6: False, 7: True, 5: True}) == 5
    assert largest_realtime({4: False, 2: True, 3: True}) == 3
    assert largest_realtime({1: False}) == 0


@pytest.mark.slow
def test_find_max_runs_the_daemon_and_reports_the_largest_count(
    footage: Path, broker: Broker, tmp_path: Path
) -> None:
    out, plot = tmp_path / "search.json", tmp_path / "search.png"
    finished = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "bench", "--find-max", "--cameras", "1",
         "--max-cameras", "2", "--seconds", "8", "--scene", "busy", "--footage", str(footage),
         "--mqtt", f"{broker.host}:{broker.port}", "--json", str(out), "--plot", str(plot)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    print(finished.stdout)
    report = json.loads(out.read_text())
    tried = [t["cameras"] for t in report["trials"]]
    assert tried[0] == 1 and set(tried) <= {1, 2}
    best = report["largest_realtime_cameras"]
    assert best == largest_realtime({t["cameras"]: t["realtime"] for t in report["trials"]})
    for trial in report["trials"]:  # the verdict agrees with the numbers it was made from
        assert trial["realtime"] == (trial["slowest_read_share"] >= 0.95
                                     and trial["latency_p95_s"] is not None
                                     and trial["latency_p95_s"] <= 1.0
                                     and trial["realtime_cameras"] == trial["cameras"])
    assert f"largest real-time camera count: {best}" in finished.stdout
    assert "try 1: 1 camera(s)" in finished.stdout  # progress, one line per try
    assert plot.stat().st_size > 10_000
    assert report["model"].endswith("_int8_openvino_model")
