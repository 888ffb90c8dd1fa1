"""Home Assistant MQTT discovery and the detection switch.

The discovery payloads are checked against the fields Home Assistant documents for each MQTT
platform (https://www.home-assistant.io/integrations/<platform>.mqtt/): the required ones are
there with the right types, and every topic an entity reads is one the daemon publishes. Then a
real daemon and a real Mosquitto: the retained configs, the snapshot JPEG, the switch turning
the detector off and on, and discovery sent again when Home Assistant says it started.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest

from monitor.config import Config, parse_config
from monitor.mqtt.homeassistant import Discovery, camera_kinds
from monitor.types import EventKind
from tests.fixtures.broker import Broker, Subscriber

# Per platform: keys Home Assistant requires in a discovery payload, and keys whose values
# must be of a type (its schema rejects or drops the entity otherwise).
REQUIRED = {
    "binary_sensor": {"state_topic"},
    "sensor": {"state_topic"},
    "event": {"state_topic", "event_types"},
    "image": {"image_topic"},
    "switch": {"command_topic"},
}
COMMON = {"unique_id", "name", "device", "origin", "availability"}
BINARY_DEVICE_CLASSES = {"occupancy", "motion", "connectivity"}
SENSOR_STATE_CLASSES = {"measurement", "total", "total_increasing"}


def check_payload(topic: str, payload: dict[str, Any], discovery_prefix: str = "homeassistant") -> str:
    """Assert one discovery message is valid for its platform; returns the platform."""
    parts = topic.split("/")
    assert topic.startswith(discovery_prefix + "/") and parts[-1] == "config", topic
    platform = parts[len(discovery_prefix.split("/"))]
    assert platform in REQUIRED, topic
    assert len(parts) == len(discovery_prefix.split("/")) + 4  # component/node_id/object_id
    missing = (REQUIRED[platform] | COMMON) - payload.keys()
    assert not missing, f"{topic}: {missing}"
    assert isinstance(payload["device"]["identifiers"], list) and payload["device"]["identifiers"]
    assert payload["origin"]["name"] == "monitor"
    assert all(set(a) == {"topic"} for a in payload["availability"])
    for key, value in payload.items():
        if key.endswith("_topic"):
            assert isinstance(value, str) and "+" not in value and "#" not in value, (topic, key)
    if platform == "binary_sensor" and "device_class" in payload:
        assert payload["device_class"] in BINARY_DEVICE_CLASSES
    if platform == "sensor" and "state_class" in payload:
        assert payload["state_class"] in SENSOR_STATE_CLASSES
    if payload.get("device_class") == "enum":
        assert payload["options"] and "state_class" not in payload
    if platform == "event":
        assert payload["event_types"] == ["start", "update", "end"]
    if platform == "image":
        assert payload["content_type"] == "image/jpeg"
    if platform == "switch":
        assert (payload["payload_on"], payload["payload_off"]) == ("ON", "OFF")
        assert payload["command_topic"] == payload["state_topic"] + "/set"
    if "entity_category" in payload:
        assert payload["entity_category"] in {"diagnostic", "config"}
    return platform


def config_with_everything() -> Config:
    return parse_config({
        "daemon": {"instance": "nvr"},
        "cameras": [{
            "name": "gate", "url": "rtsp://127.0.0.1:8554/gate", "labels": ["person", "car"],
            "zones": [{"name": "drive", "polygon": [[0, 0], [1, 0], [1, 1]],
                       "crowd": {"label": "person", "min_objects": 3, "for_s": 5.0}}],
            "lines": [{"name": "path", "points": [[0.5, 0], [0.5, 1]]}],
        }, {"name": "yard", "url": "rtsp://127.0.0.1:8554/yard"}],
    })


def test_every_payload_is_valid_for_its_platform_and_unique() -> None:
    config = config_with_everything()
    discovery = Discovery(config)
    messages = {**discovery.daemon_messages()}
    for camera in config.cameras:
        messages.update(discovery.camera_messages(camera))
    platforms = [check_payload(t, json.loads(p)) for t, p in messages.items()]
    payloads = [json.loads(p) for p in messages.values()]
    ids = [p["unique_id"] for p in payloads]
    assert len(ids) == len(set(ids)), "unique_id must be unique"
    # gate: (camera + 1 zone) x 2 labels -> 4 occupancy + 4 counts, plus motion; 2 lines
    # directions x 2 labels; yard: 1 label.
    gate = [p for p in payloads if p["device"]["identifiers"] == ["monitor_nvr_gate"]]
    assert sum(p.get("device_class") == "occupancy" for p in gate) == 4
    assert sum("crossings" in p.get("state_topic", "") for p in gate) == 4
    assert {p["state_topic"].rsplit("/", 1)[1] for p in gate if "event_types" in p} == {
        k.value for k in EventKind}  # zones, a crowd, a line and the temporal decider: all kinds
    assert all(p["device"]["via_device"] == "monitor_nvr" for p in gate)
    assert platforms.count("image") == 2 and platforms.count("switch") == 2


def test_names_that_run_together_still_make_distinct_entities() -> None:
    # Found in review: camera "garden" + zone "shed" and camera "garden_shed" both made
    # "garden_shed_person_occupancy": one config overwrote the other.
    config = parse_config({"cameras": [
        {"name": "garden", "url": "rtsp://h/a",
         "zones": [{"name": "shed", "polygon": [[0, 0], [1, 0], [1, 1]]}]},
        {"name": "garden_shed", "url": "rtsp://h/b"},
    ]})
    discovery = Discovery(config)
    topics = [t for camera in config.cameras for t in discovery.camera_messages(camera)]
    ids = [json.loads(p)["unique_id"] for camera in config.cameras
           for p in discovery.camera_messages(camera).values()]
    assert len(topics) == len(set(topics)) and len(ids) == len(set(ids))


def test_a_changed_camera_keeps_the_entities_it_still_has() -> None:
    from monitor.mqtt.announce import Announcer

    class Recorder:
        def __init__(self) -> None:
            self.values: dict[str, str | bytes] = {}

        def publish_value(self, topic: str, payload: str | bytes) -> None:
            self.values[topic] = payload

    before = config_with_everything()
    after = parse_config({**before.model_dump(mode="json", exclude={"cameras"}), "cameras": [
        {**before.cameras[0].model_dump(mode="json"), "lines": []},
        before.cameras[1].model_dump(mode="json")]})
    recorder = Recorder()
    announcer = Announcer(recorder, before)  # type: ignore[arg-type]
    announcer.camera(before.cameras[0], detection_on=True)
    announcer.forget(before.cameras[0], keeping=after.cameras[0])
    cleared = {t for t, v in recorder.values.items() if v == ""}
    # Only what came with the line went: its counters and the line_crossing event entity.
    assert cleared and all("_path_" in t or "line_crossing" in t for t in cleared), cleared
    assert recorder.values["monitor/gate/detect"] == "ON"
    announcer.forget(after.cameras[0])  # removed for good: everything of it goes
    assert recorder.values["monitor/gate/status"] == "" and recorder.values["monitor/gate/detect"] == ""


def test_commands_that_could_blind_a_camera_by_accident_are_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from monitor.mqtt.commands import CommandInbox, HomeAssistantStarted, SwitchDetection

    inbox = CommandInbox("monitor", "homeassistant", {"gate"})
    inbox.receive("monitor/gate/detect/set", b"OFF", retained=True)  # replayed at every connect
    inbox.receive("monitor/gate/detect/set", b"x" * 10_000)
    inbox.receive("monitor/gate/detect/set", b"maybe")
    inbox.receive("monitor/gate/detect/set", b"maybe")
    inbox.receive("monitor/yard/detect/set", b"OFF")
    inbox.receive("homeassistant/status", b"offline")
    assert inbox.take() == []
    inbox.receive("monitor/gate/detect/set", b" off ")
    inbox.receive("homeassistant/status", b"online")
    assert inbox.take() == [SwitchDetection("gate", False), HomeAssistantStarted()]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings  # one per topic, however many messages
    assert "retained command is ignored" in warnings[0] and "'yard'" in warnings[1]


def test_a_camera_offers_only_the_kinds_it_can_raise() -> None:
    config = parse_config({"temporal": {"decider": "off"},
                           "cameras": [{"name": "yard", "url": "rtsp://127.0.0.1:8554/yard"}]})
    assert camera_kinds(config.cameras[0], config) == [EventKind.PRESENCE,
                                                        EventKind.CAMERA_OFFLINE]


# --- a real daemon --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_discovery_snapshot_and_the_detection_switch(
    tmp_path: Path, footage: Path, broker: Broker
) -> None:
    from tests.test_daemon import config_for, start_daemon

    cameras = [{"name": "gate", "url": str(footage), "detect_fps": 3.0,
                "zones": [{"name": "path", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}]
    config = config_for(tmp_path, broker.port, cameras, daemon={"instance": "nvr"},
                        metrics={"stats_interval_s": 1.0})
    subscriber = Subscriber(broker.port, ["homeassistant/#", "monitor/#"]).start()
    daemon = start_daemon(config, tmp_path)

    def received(topic: str) -> list[bytes]:
        return [m.data for m in subscriber.messages if m.topic == topic]

    def configs() -> dict[str, dict[str, Any]]:
        return {m.topic: json.loads(m.payload) for m in subscriber.messages
                if m.topic.startswith("homeassistant/") and m.payload}

    try:
        assert subscriber.wait_for(lambda _: received("monitor/gate/snapshot"), 60), \
            "no snapshot published"
        assert received("monitor/gate/snapshot")[-1][:2] == b"\xff\xd8"  # a JPEG
        assert subscriber.wait_for(lambda _: received("monitor/stats/nvr"), 10), "no stats"
        found = configs()
        for topic, payload in found.items():
            check_payload(topic, payload)
            for key in ("state_topic", "image_topic"):
                if key in payload:  # every topic an entity reads has a value by now
                    assert received(payload[key]) or key == "state_topic" and \
                        payload["state_topic"].startswith("monitor/events/"), (topic, key)
        assert len(found) >= 10
        assert received("monitor/gate/detect")[-1:] == [b"ON"]
        assert received("monitor/gate/status")[-1:] == [b"online"]

        # Off: no inference for that camera, status disabled; the stats say it.
        mqtt_publish.single("monitor/gate/detect/set", "OFF", hostname="127.0.0.1",
                            port=broker.port, qos=1)
        assert subscriber.wait_for(lambda _: received("monitor/gate/detect")[-1:] == [b"OFF"], 5)
        # The status follows the switch's state in the next message: wait for it too.
        assert subscriber.wait_for(
            lambda _: received("monitor/gate/status")[-1:] == [b"disabled"], 5)
        time.sleep(3)
        mark = len(received("monitor/stats/nvr"))
        assert subscriber.wait_for(lambda _: len(received("monitor/stats/nvr")) >= mark + 2, 5)
        stats = [json.loads(p) for p in received("monitor/stats/nvr")[mark:]]
        assert all(s["cameras"]["gate"]["detection_fps"] == 0 for s in stats), stats
        assert all(s["cameras"]["gate"]["status"] == "disabled" for s in stats), stats

        mqtt_publish.single("monitor/gate/detect/set", "on", hostname="127.0.0.1",
                            port=broker.port, qos=1)
        assert subscriber.wait_for(lambda _: received("monitor/gate/detect")[-1:] == [b"ON"], 5)
        assert subscriber.wait_for(
            lambda _: received("monitor/gate/status")[-1:] == [b"online"], 5)
        mark = len(received("monitor/stats/nvr"))
        assert subscriber.wait_for(lambda _: any(
            json.loads(p)["cameras"]["gate"]["detection_fps"] > 0
            for p in received("monitor/stats/nvr")[mark:]), 10)

        # Nonsense is ignored (logged), and Home Assistant's birth message re-sends discovery.
        mqtt_publish.single("monitor/gate/detect/set", "maybe", hostname="127.0.0.1",
                            port=broker.port, qos=1)
        mqtt_publish.single("monitor/nosuch/detect/set", "OFF", hostname="127.0.0.1",
                            port=broker.port, qos=1)
        before = len([m for m in subscriber.messages if m.topic.startswith("homeassistant/")
                      and m.topic.endswith("/config")])
        mqtt_publish.single("homeassistant/status", "online", hostname="127.0.0.1",
                            port=broker.port, qos=1)
        assert subscriber.wait_for(lambda m: len([x for x in m if x.topic.endswith("/config")])
                                   >= before + len(found), 10)
        assert received("monitor/gate/detect")[-1:] == [b"ON"]
    finally:
        rc = daemon.stop()
        subscriber.stop()
    assert rc == 0, daemon.log[-3000:]
    assert "Traceback" not in daemon.log
    assert "payload 'maybe' is not ON or OFF" in daemon.log
    assert "no camera 'nosuch' here" in daemon.log
