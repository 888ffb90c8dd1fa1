"""Detector inference on an NVIDIA Triton server: ``[detector] model`` as its URL.

No Triton server runs here (it needs its own container and a model repository), so what is
tested is everything up to the network: the URL is recognised and checked, nothing is exported
or pinned for it, and a server that is not there gives one clear line instead of a traceback.
The client is the real tritonclient against a real closed port.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from monitor.config import DetectorConfig
from monitor.detect.accelerate import plan_export
from monitor.detect.yolo import DetectorError, YoloDetector, backend_of, resolve_model


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("url", ["http://triton.lan:8000/yolo", "grpc://10.0.0.5:8001/person_v8",
                                 "http://[::1]:8000/yolo"])
def test_a_triton_url_is_taken_as_it_is(url: str, tmp_path: Path) -> None:
    assert resolve_model(url) == url
    assert backend_of(url) == "triton"
    plan = plan_export(DetectorConfig(model=url), tmp_path)  # the int8 export is for a .pt here
    assert plan.target is None and plan.reason == "a Triton server runs it"


@pytest.mark.parametrize("url", ["http://:8000/yolo", "http://triton.lan:8000/", "grpc://host",
                                 "http://user@triton.lan:8000/yolo", "http://triton:99999/yolo",
                                 "http://triton.lan:8000/yolo?x=1", "http://triton:port/yolo"])
def test_a_broken_triton_url_is_one_line_naming_the_key(url: str) -> None:
    with pytest.raises(DetectorError) as caught:
        resolve_model(url)
    assert str(caught.value).startswith(f"detector.model {url!r}: not a Triton URL")
    assert "\n" not in str(caught.value)


def test_a_pin_cannot_hold_for_a_remote_model() -> None:
    config = DetectorConfig(model="http://triton.lan:8000/yolo", sha256="0" * 64)
    with pytest.raises(DetectorError, match="must be a file here"):
        YoloDetector(config)


def test_an_unreachable_server_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{closed_port()}/yolo"
    with pytest.raises(DetectorError) as caught:
        YoloDetector(DetectorConfig(model=url))
    message = str(caught.value)
    assert message.startswith(f"detector.model '{url}': the Triton server cannot be reached")
    assert "refused" in message.lower() and "\n" not in message
