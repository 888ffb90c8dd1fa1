"""Retained state: counts that stay right while events overlap, motion ON/OFF, and the retained
topics on a real Mosquitto, current again after the broker restarts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from monitor.config import EventsConfig, MqttConfig
from monitor.events.lifecycle import EventLifecycle
from monitor.events.occupancy import Occupancy
from monitor.events.zones import Zone
from monitor.mqtt.client import MqttClient
from monitor.mqtt.state import RetainedState
from monitor.mqtt.topics import count_topic, motion_topic, state_messages
from monitor.types import Box, CameraState, Motion
from tests.builders import make_detection, make_tracks
from tests.fixtures.broker import Broker, Received, Subscriber

RIGHT_HALF = Zone("yard", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
MOVED = Motion((Box(0, 0, 10, 10),), 0.01)
STILL = Motion((), 0.0)


class Keep:
    def __init__(self) -> None:
        self.states: list[CameraState] = []

    def publish_state(self, state: CameraState) -> None:
        self.states.append(state)


def test_topics() -> None:
    assert count_topic("monitor", "gate", "person") == "monitor/gate/person"
    assert count_topic("home/m", "gate", "person", "yard") == "home/m/gate/yard/person"
    assert motion_topic("monitor", "gate") == "monitor/gate/motion"
    state = CameraState("gate", {(None, "person"): 2, ("yard", "person"): 1}, True)
    assert state_messages("m", state) == [
        ("m/gate/person", "2"), ("m/gate/yard/person", "1"), ("m/gate/motion", "ON"),
    ]


def test_counts_follow_overlapping_people_in_and_out_of_a_zone() -> None:
    """Eight people overlap: the count is the number present, never an ON/OFF per event."""
    keep = Keep()
    occupancy = Occupancy("cam1", ["person"], ["yard"], 30.0, keep)
    life = EventLifecycle("cam1", ["person"], [RIGHT_HALF],
                          EventsConfig(end_after_s=1.0, alert_never_moved=True))
    occupancy.reset()
    assert keep.states[-1].counts == {(None, "person"): 0, ("yard", "person"): 0}
    counts = []
    for step in range(40):
        t = step * 0.5
        # Person i is there from t=i to t=i+8; odd ones stand in the yard (right half).
        people = [i for i in range(8) if i <= t < i + 8]
        boxes = [(i, make_detection((60, 10, 80, 60) if i % 2 else (10, 10, 30, 60)))
                 for i in people]
        tracks = make_tracks(t, *boxes)
        life.update(tracks)
        state = occupancy.update(life.present(), t)
        counts.append((t, state.counts[(None, "person")], state.counts[("yard", "person")]))
    # Person i counts from confirmation (3rd sighting, t = i + 1) until 1 s unseen after the
    # last sighting at i + 7.5: i + 1 <= t < i + 8.5. Up to 8 overlap.
    expected = [
        (t, sum(i + 1 <= t < i + 8.5 for i in range(8)),
         sum(i + 1 <= t < i + 8.5 for i in range(1, 8, 2)))
        for t, _, _ in counts
    ]
    assert counts == expected
    assert max(c for _, c, _ in counts) == 8
    # Only changes are handed on: no two states in a row are equal.
    assert all(a != b for a, b in zip(keep.states, keep.states[1:]))
    assert len(keep.states) < len(counts)


def test_motion_on_then_off_after_the_delay() -> None:
    keep = Keep()
    occupancy = Occupancy("cam1", ["person"], [], 5.0, keep)
    assert occupancy.reset().motion is False
    assert occupancy.update([], 1.0, STILL).motion is False
    assert occupancy.update([], 2.0, MOVED).motion is True
    assert occupancy.update([], 6.9, STILL).motion is True
    assert occupancy.update([], 7.0, None).motion is False
    assert [s.motion for s in keep.states] == [False, True, False]
    unknown = Occupancy("cam1", ["person"], [], 5.0, keep, motion_known=False)
    assert unknown.update([], 1.0, MOVED).motion is None


def wait_until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def seen(messages: list[Received], topic: str, payload: str) -> bool:
    return any(m.topic == topic and m.payload == payload for m in messages)


@pytest.mark.integration
def test_retained_state_is_current_after_a_broker_restart(broker_factory: Any) -> None:
    broker: Broker = broker_factory(persistence=False)
    broker.start()
    config = MqttConfig(host="127.0.0.1", port=broker.port, prefix="t", reconnect_max_s=0.5)
    changes: list[RetainedState] = []
    client = MqttClient(config, on_connection_change=lambda up: changes[0].connection_changed(up))
    state = RetainedState(client, "t")
    changes.append(state)
    client.start()
    state.start()
    try:
        state.publish_state(CameraState("gate", {(None, "person"): 1}, True))
        state.publish_state(CameraState("gate", {(None, "person"): 2}, True))
        assert state.flush(5.0)
        with Subscriber(broker.port, ["t/gate/#"]) as late:
            # flush() means handed to paho: a value may still reach the broker just after the
            # subscriber came, live rather than retained. Either way the subscriber is current.
            assert late.wait_for(lambda m: seen(m, "t/gate/person", "2") and
                                 seen(m, "t/gate/motion", "ON"), 3.0), late.messages
            assert not seen(late.messages, "t/gate/person", "1")
        # The broker restarts without persistence: it forgot every retained message.
        broker.stop()
        state.publish_state(CameraState("gate", {(None, "person"): 3}, False))  # while it is down
        broker.start()
        assert wait_until(lambda: client.is_connected, 10.0), broker.log_tail()
        assert state.flush(5.0)
        with Subscriber(broker.port, ["t/gate/#"]) as late:
            assert late.wait_for(lambda m: seen(m, "t/gate/person", "3") and
                                 seen(m, "t/gate/motion", "OFF"), 3.0), late.messages
    finally:
        state.stop(2.0)
        client.stop(2.0)
