"""Model files: no code runs from a ``.pt``, and a pinned model is exactly the pinned one.

The malicious checkpoint is a real pickle whose loading calls ``os.system``; the test that shows
the danger is real loads it with ultralytics' default loader in a separate interpreter and sees
the payload run. The daemon's loader must refuse the same file with one line and run nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import DetectorConfig
from monitor.detect.pin import model_digest
from monitor.detect.yolo import DetectorError, YoloDetector, pinned_model, resolve_model

DEFAULT_MODEL = Path(resolve_model(DetectorConfig().model))
DEFAULT_SHA256 = "5f6f620d0fa574ed80d8348bb8d46060148eb0ba24e3eea00d31a30cdadba41d"

MAKE_EVIL = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"model": Payload(), "train_args": {}}, sys.argv[1])
"""


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A ``.pt`` whose unpickling creates ``marker``; the marker path, not yet existing."""
    folder = tmp_path_factory.mktemp("evil")
    model, marker = folder / "best.pt", folder / "PAYLOAD-RAN"
    subprocess.run([sys.executable, "-c", MAKE_EVIL, str(model), str(marker)], check=True)
    assert not marker.exists()
    return model, marker


def test_the_danger_is_real_ultralytics_default_loading_runs_the_payload(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = {k: v for k, v in os.environ.items() if k != "ULTRALYTICS_SAFE_LOAD"}
    code = ("import sys, torch\n"
            "from ultralytics.nn.tasks import torch_safe_load\n"
            "try: torch_safe_load(sys.argv[1])\nexcept Exception: pass\n")
    copy = tmp_path / "best.pt"
    subprocess.run([sys.executable, "-c", MAKE_EVIL, str(copy), str(marker)], check=True)
    subprocess.run([sys.executable, "-c", code, str(copy)], env=env, check=True, timeout=120)
    assert marker.exists(), "ultralytics' default loader no longer runs pickled code"


def test_a_malicious_pt_is_refused_and_its_payload_never_runs(evil: tuple[Path, Path]) -> None:
    model, marker = evil
    with pytest.raises(DetectorError) as raised:
        YoloDetector(DetectorConfig(model=str(model)))
    message = str(raised.value)
    assert "\n" not in message
    assert str(model) in message and "cannot load" in message
    assert not marker.exists()


def test_the_default_model_loads_with_safe_loading_and_its_pin() -> None:
    detector = YoloDetector(DetectorConfig(sha256=DEFAULT_SHA256.upper()))
    assert detector.sha256 == DEFAULT_SHA256
    assert detector.labels() == {"person"}
    assert os.environ["ULTRALYTICS_SAFE_LOAD"] == "1"


def test_a_model_that_is_not_the_pinned_one_is_refused_before_loading(tmp_path: Path) -> None:
    changed = tmp_path / "best.pt"
    changed.write_bytes(DEFAULT_MODEL.read_bytes() + b"\0")
    with pytest.raises(DetectorError, match=r"SHA-256 is [0-9a-f]{64}, but detector.sha256 pins"):
        YoloDetector(DetectorConfig(model=str(changed), sha256=DEFAULT_SHA256))


def test_a_pin_needs_a_local_file() -> None:
    # Offline, resolve_model refuses the name already; online it would pass it on to download.
    with pytest.raises(DetectorError, match="must be a file here"):
        pinned_model("yolo11n.pt", DEFAULT_SHA256)
    assert pinned_model("yolo11n.pt", None) is None


def test_class_labels_must_name_classes_of_the_model() -> None:
    with pytest.raises(DetectorError, match=r"'Faal' is no class of .* \(its classes: Normal, Fall\)"):
        YoloDetector(DetectorConfig(class_labels={"Normal": "person", "Faal": "person"}))


def test_a_directory_digest_covers_every_file_and_name(tmp_path: Path) -> None:
    model = tmp_path / "best_openvino_model"
    model.mkdir()
    (model / "best.xml").write_text("<net/>")
    (model / "best.bin").write_bytes(b"\1\2")
    first = model_digest(model)
    (model / "best.bin").write_bytes(b"\1\3")
    second = model_digest(model)
    (model / "best.bin").rename(model / "other.bin")
    third = model_digest(model)
    assert len({first, second, third}) == 3


def test_check_config_prints_the_digest_and_refuses_a_wrong_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.toml"
    body = '[temporal]\ndecider = "rules"\n[[cameras]]\nname = "a"\nurl = "rtsp://h/"\n'
    config.write_text(body)
    assert main(["check-config", str(config)]) == 0
    assert f"sha256 {DEFAULT_SHA256}" in capsys.readouterr().out
    config.write_text(f'[detector]\nsha256 = "{"0" * 64}"\n' + body)
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "detector.sha256 pins 0000" in err[0]


def test_a_directory_that_is_no_model_is_refused_without_reading_it(tmp_path: Path) -> None:
    # Found by the config fuzzer: detector.model = "/" made check-config hash the whole disk.
    with pytest.raises(DetectorError, match="a directory, and not an OpenVINO model"):
        YoloDetector(DetectorConfig(model="/"))
    big = tmp_path / "big_openvino_model"
    big.mkdir()
    for n in range(101):
        (big / f"{n}.bin").write_bytes(b"")
    with pytest.raises(DetectorError, match="more than 100 files: not a model directory"):
        pinned_model(str(big), None)
