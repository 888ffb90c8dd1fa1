"""Home Assistant MQTT discovery: the retained config messages that make entities appear.

One Home Assistant device per camera and one for the daemon (cameras are ``via_device`` the
daemon). Every entity has a ``unique_id`` (so it can be renamed in Home Assistant), the device,
the ``origin`` and the daemon's availability topic. Discovery topics are per component
(``{discovery_prefix}/{component}/{node_id}/{object_id}/config``), which every Home Assistant
version with MQTT discovery reads. Per camera:

* ``binary_sensor`` occupancy and ``sensor`` count per label, in the picture and per zone (the
  retained counts ``{prefix}/{camera}[/{zone}]/{label}``), and motion;
* ``event`` per event kind the camera can raise (``{prefix}/events/{camera}/{kind}``; the event
  types are the alert types ``start``, ``update``, ``end``);
* ``sensor`` per line, label and direction (crossings since the records began,
  ``total_increasing``);
* ``image``: the snapshot of the camera's newest event (``{prefix}/{camera}/snapshot``, JPEG);
* ``switch``: detection on/off (``{prefix}/{camera}/detect/set``; state ``.../detect``);
* diagnostics: the camera's status (``online``/``offline``/``disabled``) and its detection fps.

The daemon's device has the detector's inference time and frames/s and the unsent alerts, all
from ``{prefix}/stats/{instance}``. Pure functions: the daemon publishes what they return,
retained.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from monitor import __version__
from monitor.config import CameraConfig, Config
from monitor.mqtt.topics import (
    availability_topic,
    count_topic,
    crossings_topic,
    event_topic,
    motion_topic,
    status_topic,
)
from monitor.observe.stats_topic import stats_topic
from monitor.types import AlertType, Direction, EventKind

ON, OFF = "ON", "OFF"
STATUS_DISABLED = "disabled"  # detection switched off (the camera may be streaming)
BIRTH_PAYLOAD = "online"  # what Home Assistant publishes on {discovery_prefix}/status at start


def _title(text: str) -> str:
    """First letter up, the rest as written (zone names keep their capitals)."""
    return text[:1].upper() + text[1:]


def snapshot_topic(prefix: str, camera: str) -> str:
    """Retained JPEG of the camera's newest event, boxes drawn (Home Assistant ``image``)."""
    return f"{prefix}/{camera}/snapshot"


def detect_topic(prefix: str, camera: str) -> str:
    """Retained ``ON``/``OFF``: whether the detector looks at the camera."""
    return f"{prefix}/{camera}/detect"


def detect_command_topic(prefix: str, camera: str) -> str:
    """Publish ``ON`` or ``OFF`` here to switch the camera's detection."""
    return f"{detect_topic(prefix, camera)}/set"


def birth_topic(discovery_prefix: str) -> str:
    """Home Assistant says ``online`` here when it (re)starts: discovery is sent again."""
    return f"{discovery_prefix}/status"


def camera_kinds(camera: CameraConfig, config: Config) -> list[EventKind]:
    """The event kinds this camera can raise with this config, in ``EventKind`` order."""
    possible = {EventKind.PRESENCE, EventKind.CAMERA_OFFLINE}
    if camera.zones:
        possible |= {EventKind.INTRUSION, EventKind.LOITERING}
    if any(zone.crowd is not None for zone in camera.zones):
        possible.add(EventKind.CROWD)
    if camera.lines:
        possible.add(EventKind.LINE_CROSSING)
    if config.temporal.decider != "off":
        possible |= {EventKind.FALL, EventKind.RUNNING}
    return [kind for kind in EventKind if kind in possible]


class Discovery:
    """The discovery messages of one daemon's config.

    Args:
        config: the running config.
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._prefix = config.mqtt.prefix
        self._instance = config.daemon.instance
        self._node = f"monitor_{self._instance}"
        self._availability = [{"topic": availability_topic(self._prefix, self._instance)}]
        self._origin = {"name": "monitor", "sw_version": __version__}

    def daemon_messages(self) -> dict[str, str]:
        """Discovery topic -> config JSON of the daemon's own entities."""
        device = self._daemon_device()
        stats = stats_topic(self._prefix, self._instance)
        entities = [
            ("sensor", "inference_ms", {
                "name": "Inference time", "state_topic": stats, "unit_of_measurement": "ms",
                "device_class": "duration", "state_class": "measurement",
                "value_template": "{{ value_json.detector.inference_ms }}",
                "entity_category": "diagnostic",
            }),
            ("sensor", "detector_fps", {
                "name": "Detector frames per second", "state_topic": stats,
                "unit_of_measurement": "fps", "state_class": "measurement",
                "value_template": "{{ value_json.detector.frames_per_s }}",
                "entity_category": "diagnostic",
            }),
            ("sensor", "unsent_alerts", {
                "name": "Unsent alerts", "state_topic": stats, "state_class": "measurement",
                "value_template": "{{ value_json.store.unsent }}",
                "entity_category": "diagnostic",
            }),
        ]
        return dict(self._message(c, o, device, body) for c, o, body in entities)

    def camera_messages(self, camera: CameraConfig) -> dict[str, str]:
        """Discovery topic -> config JSON of one camera's entities."""
        device = self._camera_device(camera)
        return dict(self._message(component, object_id, device, body, camera=camera.name)
                    for component, object_id, body in self._camera_entities(camera))

    def _camera_entities(self, camera: CameraConfig) -> Iterator[tuple[str, str, dict[str, Any]]]:
        prefix, name = self._prefix, camera.name
        places: list[str | None] = [None, *(zone.name for zone in camera.zones)]
        for zone in places:
            where = f"{zone} " if zone else ""
            for label in camera.labels:
                key = f"{zone}_{label}" if zone else label
                topic = count_topic(prefix, name, label, zone)
                yield "binary_sensor", f"{key}_occupancy", {
                    "name": _title(f"{where}{label} occupancy"), "state_topic": topic,
                    "value_template": "{{ 'ON' if value | int(0) > 0 else 'OFF' }}",
                    "device_class": "occupancy",
                }
                yield "sensor", f"{key}_count", {
                    "name": _title(f"{where}{label} count"), "state_topic": topic,
                    "state_class": "measurement", "value_template": "{{ value | int(0) }}",
                }
        if self._config.motion.enabled:
            yield "binary_sensor", "motion", {
                "name": "Motion", "state_topic": motion_topic(prefix, name),
                "device_class": "motion",
            }
        for kind in camera_kinds(camera, self._config):
            yield "event", f"{kind.value}_event", {
                "name": _title(kind.value.replace("_", " ")),
                "state_topic": event_topic(prefix, name, kind),
                "event_types": [t.value for t in AlertType],
                # Home Assistant wants {"event_type": ...}; the alert says "type". tojson
                # keeps a null zone null (not the string "None").
                "value_template": "{{ {'event_type': value_json.type, 'id': value_json.id, "
                                  "'label': value_json.label, 'zone': value_json.zone} | tojson }}",
            }
        for line in camera.lines:
            for label in camera.labels:
                for direction in Direction:
                    yield "sensor", f"{line.name}_{label}_{direction.value}", {
                        "name": _title(f"{line.name} {label} {direction.value}"),
                        "state_topic": crossings_topic(prefix, name, line.name, label, direction),
                        "state_class": "total_increasing",
                    }
        yield "image", "snapshot", {
            "name": "Snapshot", "image_topic": snapshot_topic(prefix, name),
            "content_type": "image/jpeg",
        }
        yield "switch", "detect", {
            "name": "Detection", "command_topic": detect_command_topic(prefix, name),
            "state_topic": detect_topic(prefix, name), "payload_on": ON, "payload_off": OFF,
            "icon": "mdi:motion-sensor",
        }
        yield "sensor", "status", {
            "name": "Status", "state_topic": status_topic(prefix, name),
            "device_class": "enum", "options": ["online", "offline", STATUS_DISABLED],
            "entity_category": "diagnostic",
        }
        yield "sensor", "detection_fps", {
            "name": "Detection frames per second",
            "state_topic": stats_topic(prefix, self._instance),
            "unit_of_measurement": "fps", "state_class": "measurement",
            "value_template": "{{ value_json.cameras['" + name + "'].detection_fps }}",
            "entity_category": "diagnostic",
        }

    def _message(
        self, component: str, object_id: str, device: dict[str, Any], body: dict[str, Any],
        camera: str | None = None,
    ) -> tuple[str, str]:
        # Names may hold "_": "garden" + zone "shed" and camera "garden_shed" would both make
        # "garden_shed_person". A digest of the parts, kept apart, makes the id unique; the
        # readable part is for people reading the broker.
        parts = json.dumps([self._instance, camera, component, object_id])
        digest = hashlib.sha256(parts.encode()).hexdigest()[:10]
        object_id = f"{camera}_{object_id}_{digest}" if camera else f"{object_id}_{digest}"
        unique_id = f"{self._node}_{object_id}"
        payload = {
            **body, "unique_id": unique_id, "device": device,
            "origin": self._origin, "availability": self._availability, "qos": 1,
        }
        topic = f"{self._config.homeassistant.discovery_prefix}/{component}/{self._node}/" \
                f"{object_id}/config"
        return topic, json.dumps(payload, separators=(",", ":"))

    def _daemon_device(self) -> dict[str, Any]:
        return {"identifiers": [self._node], "name": f"monitor {self._instance}",
                "manufacturer": "monitor", "model": "camera monitoring daemon",
                "sw_version": __version__}

    def _camera_device(self, camera: CameraConfig) -> dict[str, Any]:
        return {"identifiers": [f"{self._node}_{camera.name}"], "name": camera.name,
                "manufacturer": "monitor", "model": "camera", "via_device": self._node}
