"""End to end with the real detector: composed clips of real people (held-out seeds) and vtest.avi
through `monitor synth` and `monitor eval` — detector, tracker, lifecycle and the three deciders.

Seeds: the shipped model never sees a clip (it trains on simulated tracks, seed 7); thresholds
were tuned on clips of seed 1000; these tests use seed 2000.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TEST_SEED = 2000
PER_KIND = 4


def monitor(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def held_out(footage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    monitor("synth", str(footage), str(folder), "--seed", str(TEST_SEED),
            "--per-kind", str(PER_KIND))
    return folder


def test_temporal_model_finds_falls_runs_and_loitering_on_held_out_clips(held_out: Path) -> None:
    out = held_out / "eval.json"
    picture = held_out / "timeline.png"
    done = monitor("eval", str(held_out), str(held_out / "annotations.json"),
                   "--json", str(out), "--plot", str(picture), "--quiet")
    assert picture.stat().st_size > 10_000
    print(done.stdout)  # the table, for the CI log
    scores = json.loads(out.read_text())["scores"]
    for kind in ("fall", "running", "loitering"):
        assert scores["temporal"][kind]["f1"] >= 0.85, (kind, scores["temporal"][kind])
    assert scores["temporal"]["fall"]["f1"] > scores["per_frame"]["fall"]["f1"]


def test_vtest_has_per_frame_fall_alerts_but_no_temporal_fall(footage: Path, tmp_path: Path) -> None:
    """vtest.avi has no fall. The per-frame decider alerts on the yellow object the detector calls
    'Fall'; the temporal model raises no fall event."""
    (tmp_path / "vtest.avi").symlink_to(footage)
    (tmp_path / "annotations.json").write_text("[]\n")
    (tmp_path / "eval.toml").write_text(
        '[[cameras]]\nname = "campus"\nurl = "vtest.avi"\ndetect_fps = 5\n'
    )
    out = tmp_path / "eval.json"
    done = monitor("eval", str(tmp_path), str(tmp_path / "annotations.json"),
                   "--json", str(out), "--quiet")
    result = json.loads(out.read_text())
    per_frame = result["predicted"]["per_frame"]["fall"]
    temporal = result["predicted"]["temporal"]["fall"]
    print(f"vtest.avi: {result['fall_boxes']} per-frame 'Fall' boxes, {per_frame} per-frame fall "
          f"events, {temporal} temporal fall events\n{done.stdout}")
    assert result["fall_boxes"] > 100
    assert per_frame >= 1
    assert temporal == 0
