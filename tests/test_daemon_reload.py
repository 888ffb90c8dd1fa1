"""``systemctl reload monitor`` (SIGHUP): cameras added and removed without a restart; an invalid
file is refused with the running config kept. The real daemon, a real RTSP server and broker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.fixtures.broker import Broker, Subscriber
from tests.fixtures.rtsp import RtspServer
from tests.test_daemon import alerts, config_for, start_daemon

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sighup_adds_and_removes_cameras_and_refuses_a_bad_file(
    tmp_path: Path, rtsp_server: RtspServer, broker: Broker
) -> None:
    cam1 = {"name": "cam1", "url": rtsp_server.url("cam1"), "detect_fps": 2.0}
    cam2 = {"name": "cam2", "url": rtsp_server.url("cam2"), "detect_fps": 2.0}
    config = config_for(tmp_path, broker.port, [cam1])
    with Subscriber(broker.port, ["monitor/#"]) as sub:
        daemon = start_daemon(config, tmp_path)
        assert daemon.process is not None
        try:
            config_for(tmp_path, broker.port, [cam1, cam2])
            daemon.process.send_signal(signal.SIGHUP)
            assert daemon.wait_for_log("config reloaded: 1 camera(s) started, 0 stopped", 10), \
                daemon.log[-3000:]
            assert sub.wait_for(lambda m: any(a["camera"] == "cam2" for a in alerts(m, "start")),
                                40), daemon.log[-3000:]
            threads_with_two = daemon.thread_count()

            mark = len(daemon.log)
            (tmp_path / "monitor.toml").write_text(
                (tmp_path / "monitor.toml").read_text().replace('"cam2"', '"cam 2"'))
            daemon.process.send_signal(signal.SIGHUP)
            assert daemon.wait_for_log("config reload refused (the running config stays): "
                                       "cameras[1].name", 10, after=mark), daemon.log[-3000:]
            assert daemon.process.poll() is None

            mark = len(daemon.log)
            config_for(tmp_path, broker.port, [cam2])
            daemon.process.send_signal(signal.SIGHUP)
            assert daemon.wait_for_log("config reloaded: 0 camera(s) started, 1 stopped; "
                                       "watching cam2", 15, after=mark), daemon.log[-3000:]
            # Whatever cam1 had open is ended, and its count goes back to zero.
            assert sub.wait_for(
                lambda m: {a["id"] for a in alerts(m, "start") if a["camera"] == "cam1"}
                <= {a["id"] for a in alerts(m, "end") if a["camera"] == "cam1"}, 10)
            retained = [m.payload for m in sub.messages if m.topic == "monitor/cam1/person"]
            assert retained and retained[-1] == "0"
            time.sleep(2)
            assert daemon.thread_count() < threads_with_two  # cam1's threads are gone
            later = len(sub.messages)
            time.sleep(5)
            assert not [m for m in sub.messages[later:] if m.topic.startswith("monitor/events/cam1/")]
        finally:
            rc = daemon.stop()
        log = daemon.log
        assert rc == 0, log[-3000:]
        assert "Traceback" not in log
