"""The benchmark's quiet scene: made from the real footage, empty but for noise between walkers,
cached; one slow test runs the real detector on it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

import monitor.bench.footage as footage_module
from monitor.bench.footage import QuietScene, QuietSceneSettings, make_quiet_scene, quiet_scene
from monitor.geometry import iou
from monitor.synth.background import median_background
from monitor.synth.crops import CropSettings, foreground_mask
from monitor.synth.settings import SynthSettings
from monitor.synth.video import FootageError, count_frames, read_frames, spread_indices
from monitor.types import Box
from tests.builders import read_video

SHORT = QuietSceneSettings(seconds=8.0, walker_every_s=3.0)
MASK = CropSettings()  # the foreground test the crops are cut with: blur, then 30 levels apart


@dataclass(frozen=True)
class Made:
    scene: QuietScene
    cache_dir: Path
    frames: list[np.ndarray]
    progress: list[tuple[int, int]]
    mtime_ns: int


@pytest.fixture(scope="module")
def made(footage: Path, tmp_path_factory: pytest.TempPathFactory) -> Made:
    cache_dir = tmp_path_factory.mktemp("quiet")
    progress: list[tuple[int, int]] = []
    scene = quiet_scene(footage, cache_dir, SHORT,
                        lambda done, total: progress.append((done, total)))
    return Made(scene, cache_dir, list(read_video(scene.path)), progress,
                scene.path.stat().st_mtime_ns)


@pytest.fixture(scope="module")
def background(footage: Path) -> np.ndarray:
    """The median background, taken as the generator takes it."""
    total = count_frames(footage)
    still = read_frames(footage, spread_indices(total, SynthSettings().background_frames))
    return median_background(list(still.values()))


def empty_frames(scene: QuietScene) -> list[int]:
    return [i for i in range(scene.frames) if not any(i in r for r in scene.person_ranges)]


def middle_frames(scene: QuietScene, count: int) -> list[int]:
    """Up to ``count`` frames from the middle half of every person range (the person well in)."""
    frames: list[int] = []
    for r in scene.person_ranges:
        middle = r[len(r) // 4: len(r) - len(r) // 4]
        picks = np.linspace(0, len(middle) - 1, min(count, len(middle)))
        frames.extend(middle[int(i)] for i in picks)
    return frames


# --- the file --------------------------------------------------------------------------------


def test_scene_has_the_source_size_fps_and_length(made: Made, footage: Path) -> None:
    source = cv2.VideoCapture(str(footage))
    written = cv2.VideoCapture(str(made.scene.path))
    try:
        fps = source.get(cv2.CAP_PROP_FPS)
        size = (int(source.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                int(source.get(cv2.CAP_PROP_FRAME_WIDTH)))
        assert written.get(cv2.CAP_PROP_FPS) == pytest.approx(fps)
    finally:
        source.release()
        written.release()
    assert made.scene.fps == pytest.approx(fps)
    assert made.scene.frames == round(SHORT.seconds * fps) == len(made.frames)
    assert {frame.shape for frame in made.frames} == {(*size, 3)}
    assert made.progress == [(n, made.scene.frames) for n in range(1, made.scene.frames + 1)]


def test_person_ranges_are_ordered_disjoint_and_leave_empty_frames(made: Made) -> None:
    scene = made.scene
    assert scene.person_ranges, "8 s with a walker every 3 s (mean gap) holds someone"
    bounds = [(r.start, r.stop) for r in scene.person_ranges]
    assert all(0 <= start < stop <= scene.frames for start, stop in bounds)
    assert all(a[1] < b[0] for a, b in zip(bounds, bounds[1:]))
    assert empty_frames(scene)
    assert scene.person_fraction == pytest.approx(scene.person_frames / scene.frames)
    assert 0 < scene.person_fraction < 1


def test_empty_frames_are_the_background_plus_noise(made: Made, background: np.ndarray) -> None:
    empty = empty_frames(made.scene)
    for index in empty:
        frame = made.frames[index]
        difference = float(np.abs(frame.astype(np.int16) - background).mean())
        # noise_sigma 2.5 gives a mean |noise| of 2.0; JPEG and the flicker add a little
        assert 0.5 < difference < 4.0, f"frame {index}: mean |frame - background| {difference:.2f}"
        assert np.count_nonzero(foreground_mask(frame, background, MASK)) <= 20, f"frame {index}"
    # fresh noise: no two neighbouring empty frames are alike
    pairs = [(a, a + 1) for a in empty if a + 1 in empty]
    assert pairs and not any(np.array_equal(made.frames[a], made.frames[b]) for a, b in pairs)


def test_a_person_shows_locally_inside_the_ranges(made: Made, background: np.ndarray) -> None:
    height, width = background.shape[:2]
    for index in middle_frames(made.scene, 3):
        frame = made.frames[index]
        ys, xs = np.nonzero(foreground_mask(frame, background, MASK))
        assert len(xs) >= 300, f"frame {index}: only {len(xs)} foreground pixels"
        area = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
        assert area < 0.1 * width * height, f"frame {index}: the change is not one person"
        assert float(np.abs(frame.astype(np.int16) - background).mean()) < 6.0


# --- determinism and the cache ---------------------------------------------------------------


def test_same_seed_same_file(made: Made, footage: Path, tmp_path: Path) -> None:
    again = make_quiet_scene(footage, tmp_path / "again.avi", SHORT)
    assert again == dataclasses.replace(made.scene, path=tmp_path / "again.avi")
    assert again.path.read_bytes() == made.scene.path.read_bytes()


def test_a_cache_hit_does_not_make_the_scene_again(
    made: Made, footage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> QuietScene:
        raise AssertionError("made again")

    monkeypatch.setattr(footage_module, "make_quiet_scene", refuse)
    assert quiet_scene(footage, made.cache_dir, SHORT) == made.scene
    assert made.scene.path.stat().st_mtime_ns == made.mtime_ns


def test_the_cache_name_follows_the_settings_and_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake(source: Path, out: Path, settings: QuietSceneSettings, *_: object) -> QuietScene:
        out.write_bytes(b"not a video")
        calls.append(out)
        return QuietScene(out, 20, 10.0, (range(2, 5), range(9, 12)))

    monkeypatch.setattr(footage_module, "make_quiet_scene", fake)
    source, cache = tmp_path / "source.avi", tmp_path / "cache"
    source.write_bytes(b"only its size and mtime matter here")
    first = quiet_scene(source, cache, SHORT)
    assert quiet_scene(source, cache, SHORT) == first  # read back from the index
    assert first.person_ranges == (range(2, 5), range(9, 12)) and first.person_frames == 6
    other_seed = quiet_scene(source, cache, dataclasses.replace(SHORT, seed=1))
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = quiet_scene(source, cache, SHORT)
    assert calls == [first.path, other_seed.path, touched.path]
    assert len(set(calls)) == 3


# --- bad input -------------------------------------------------------------------------------


def test_an_unreadable_source_is_a_one_line_footage_error(tmp_path: Path) -> None:
    missing, garbage = tmp_path / "missing.avi", tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video at all")
    for source in (missing, garbage):
        with pytest.raises(FootageError) as caught:
            make_quiet_scene(source, tmp_path / "out.avi", SHORT)
        assert str(source) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(FootageError, match="no such file"):
        quiet_scene(missing, tmp_path / "cache", SHORT)


def test_the_output_must_be_an_avi(footage: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.avi"):
        make_quiet_scene(footage, tmp_path / "scene.mp4", SHORT)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seconds": 0.0}, "seconds"),
        ({"walker_every_s": -1.0}, "walker_every_s"),
        ({"noise_sigma": -0.1}, "noise_sigma"),
        ({"flicker_levels": -1}, "flicker_levels"),
        ({"seed": -1}, "seed"),
    ],
)
def test_settings_reject_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuietSceneSettings(**changes)  # type: ignore[arg-type]


# --- the real detector -----------------------------------------------------------------------


@pytest.mark.slow
def test_real_detector_sees_the_walkers_and_no_one_else(made: Made, background: np.ndarray) -> None:
    from monitor.config import DetectorConfig
    from monitor.detect.yolo import YoloDetector
    from monitor.types import Frame

    detector = YoloDetector(DetectorConfig())
    detector.warm_up()

    def people(image: np.ndarray, min_score: float) -> list[Box]:
        frame = Frame(camera="quiet", index=0, image=image, captured_at=datetime.now(UTC),
                      monotonic=0.0)
        return [d.box for d in detector.detect([frame])[0].items
                if d.label == "person" and d.score >= min_score]

    # vtest's yellow object on the lawn is a "person" of score ~0.5 in the empty background
    # itself, so in every frame of the real footage too: part of the scene, not a walker.
    static = people(background, 0.25)

    def walkers(image: np.ndarray, min_score: float) -> list[Box]:
        return [b for b in people(image, min_score) if all(iou(b, s) < 0.5 for s in static)]

    inside = middle_frames(made.scene, 6)
    assert len(inside) >= 4
    # Every frame for the tracker (the detector's own floor, 0.25); at least half of them at the
    # events' confirm_min_score (0.5): a walker's score wobbles around 0.5-0.7 from frame to frame.
    weak = [i for i in inside if not walkers(made.frames[i], 0.25)]
    assert weak == [], f"no walker found in frames {weak} of {inside}"
    sure = sum(bool(walkers(made.frames[i], 0.5)) for i in inside)
    assert sure >= len(inside) / 2, f"a walker scored >= 0.5 in {sure} of {len(inside)} frames"
    empty = empty_frames(made.scene)
    for index in empty[:: max(1, len(empty) // 4)]:
        # 0.5: vtest's stone by the path is a "person" of about 0.3 in noisy empty frames too
        assert walkers(made.frames[index], 0.5) == [], f"someone in the empty frame {index}"

