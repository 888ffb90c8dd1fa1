"""Alerts over MQTT.

``topics`` names topics and builds payloads (pure), ``client`` wraps paho-mqtt (the only paho
import), ``outbox`` moves durable outbox rows to the broker at least once, in order.
"""

from monitor.mqtt.client import MqttClient, PublishError
from monitor.mqtt.outbox import OutboxPublisher, OutboxStats
from monitor.mqtt.topics import alert_payload, availability_topic, event_topic, outbox_message

__all__ = [
    "MqttClient",
    "OutboxPublisher",
    "OutboxStats",
    "PublishError",
    "alert_payload",
    "availability_topic",
    "event_topic",
    "outbox_message",
]
