"""The MQTT connection: the only module that imports paho-mqtt.

`MqttClient` owns one paho client (``CallbackAPIVersion.VERSION2``, MQTT 3.1.1) with its network
thread. It announces availability the Home Assistant way: a retained ``offline`` last will, a
retained ``online`` after every accepted CONNACK and an explicit retained ``offline`` on a clean
stop. A broker that is down or refuses us is retried forever in the background and logged once
per outage, never as a traceback.

Threading: paho calls ``on_publish``/``on_connect``/``on_disconnect`` in its network thread, and
calls ``on_publish`` while holding its own ``_out_message_mutex``, which ``publish()`` also takes.
So nothing here takes a lock in a callback, and ``on_delivered`` must not block either: hand the
mid over through a queue (see `monitor.mqtt.outbox.OutboxPublisher.delivered`).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from monitor.config import MqttConfig
from monitor.mqtt.topics import availability_topic
from monitor.types import LOCAL_INSTANCE

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"


class MqttSetupError(Exception):
    """The client cannot be set up from its config (e.g. an unreadable CA file); one line."""


class PublishError(Exception):
    """paho refused to queue a message (it was not taken; publish it again later)."""


def default_client_id() -> str:
    """``monitor-<hostname>-<pid>``: unique per process, so two daemons never kick each other."""
    return f"monitor-{socket.gethostname()}-{os.getpid()}"


class MqttClient:
    """A reconnecting MQTT 3.1.1 connection that announces availability.

    Args:
        config: broker address, credentials, TLS, keepalive and reconnect settings.
        on_delivered: called with the mid of every QoS 1 message the broker acknowledged
            (including this client's own availability messages: ignore mids you do not know).
            Runs in paho's network thread: must not block or take locks held around publish().
        on_connection_change: called with True once the broker accepted us and acknowledged
            ``online``, and with False when the connection is lost. Runs in the network thread.
        subscriptions: topic filter -> handler of ``(topic, payload, retained)``, subscribed at
            QoS 1 after every connect (commands, Home Assistant's birth message). Handlers run
            in the network thread: they must hand the message over, not act on it.

    Example:
        >>> client = MqttClient(config.mqtt, on_delivered=outbox.delivered)  # doctest: +SKIP
        >>> client.start()                                                    # doctest: +SKIP
        >>> mid = client.publish("monitor/events/gate/presence", "{...}")     # doctest: +SKIP
        >>> client.stop(timeout_s=2.0)                                        # doctest: +SKIP
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        on_delivered: Callable[[int], None] | None = None,
        on_connection_change: Callable[[bool], None] | None = None,
        instance: str = LOCAL_INSTANCE,
        subscriptions: Mapping[str, Callable[[str, bytes, bool], None]] | None = None,
    ) -> None:
        self._config = config
        self._subscriptions = dict(subscriptions or {})
        self._on_delivered = on_delivered
        self._on_connection_change = on_connection_change
        self._availability_topic = availability_topic(config.prefix, instance)
        self._server = f"{config.host}:{config.port}"
        # Written only by the network thread (and by stop() after it ended); read anywhere.
        self._connected = False
        self._online_mid: int | None = None
        self._outage_warned: set[str] = set()
        self._stopping = False
        self._started = False
        self._client = self._make_paho_client(config)

    def _make_paho_client(self, config: MqttConfig) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id or default_client_id(),
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        username = config.resolved_username()
        if username is not None:
            client.username_pw_set(username, config.resolved_password())
        if config.uses_tls:
            # ca_certs None: the system's CA store. The broker's name is checked against its
            # certificate either way.
            files = {"tls_ca_file": config.tls_ca_file, "tls_cert_file": config.tls_cert_file,
                     "tls_key_file": config.tls_key_file}
            try:
                client.tls_set(
                    ca_certs=None if config.tls_ca_file is None else str(config.tls_ca_file),
                    certfile=None if config.tls_cert_file is None else str(config.tls_cert_file),
                    keyfile=None if config.tls_key_file is None else str(config.tls_key_file),
                )
            except (OSError, ValueError) as exc:
                named = ", ".join(f"mqtt.{k} {v}" for k, v in files.items() if v is not None)
                raise MqttSetupError(
                    f"MQTT TLS: cannot load {named or 'the system CA store'}: {exc}"
                ) from None
        client.will_set(self._availability_topic, OFFLINE, qos=1, retain=True)
        # paho annotates the delays as int but computes with floats; sub-second caps work.
        min_delay = min(1.0, config.reconnect_max_s)
        client.reconnect_delay_set(min_delay, config.reconnect_max_s)  # type: ignore[arg-type]
        client.max_inflight_messages_set(config.max_inflight)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        return client

    @property
    def is_connected(self) -> bool:
        """True between an accepted CONNACK whose ``online`` was acknowledged and the next drop."""
        return self._connected

    @property
    def availability_topic(self) -> str:
        return self._availability_topic

    def start(self) -> None:
        """Connect in the background; a broker that is down is retried forever (non-blocking)."""
        if self._started:
            raise RuntimeError("MqttClient.start() called twice")
        self._started = True
        log.info("connecting to MQTT broker %s", self._server)
        self._client.connect_async(self._config.host, self._config.port, self._config.keepalive_s)
        self._client.loop_start()

    def publish(
        self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False
    ) -> int:
        """Hand one message to paho and return its mid.

        While disconnected paho keeps QoS 1 messages in memory and sends them, in order, after
        the reconnect; `on_delivered` reports the mid once the broker acknowledged it.

        Raises:
            ValueError: the topic or payload can never be published (wildcards, too large).
            PublishError: paho did not take the message; publish it again later.
        """
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise PublishError(f"paho refused message {info.mid} on {topic}: queue full")
        return info.mid

    def stop(self, timeout_s: float = 2.0) -> None:
        """Announce ``offline`` (if connected), disconnect and end the network thread.

        Waits at most half of ``timeout_s`` for the broker to acknowledge ``offline`` and never
        returns later than ``timeout_s`` (a stuck network thread is left behind as a daemon).
        """
        deadline = time.monotonic() + timeout_s
        self._stopping = True
        if not self._started:
            return
        if self._connected:
            self._announce_offline(timeout_s / 2.0)
        self._client.disconnect()
        stopper = threading.Thread(
            target=self._client.loop_stop, name="mqtt-loop-stop", daemon=True
        )
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))
        if stopper.is_alive():
            log.warning("MQTT network thread did not stop within %.1fs; leaving it", timeout_s)
        self._set_connected(False)

    def _announce_offline(self, timeout_s: float) -> None:
        info = self._client.publish(self._availability_topic, OFFLINE, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout_s)
            acked = info.is_published()
        except (RuntimeError, ValueError):  # connection dropped meanwhile: the last will covers it
            acked = False
        if not acked:
            log.warning(
                "MQTT broker %s did not acknowledge '%s' within %.1fs",
                self._server,
                OFFLINE,
                timeout_s,
            )

    # --- paho callbacks: all run in paho's network thread -------------------------------------

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            self._warn_once(f"MQTT broker {self._server} refused the connection: {reason}")
            return
        self._outage_warned.clear()
        log.info("connected to MQTT broker %s", self._server)
        # Marked connected only when "online" is acknowledged: paho re-sends the messages that were
        # unacknowledged at the drop right after this callback returns, so a publish() racing in
        # from another thread before that would overtake them.
        info = client.publish(self._availability_topic, ONLINE, qos=1, retain=True)
        self._online_mid = info.mid
        if self._subscriptions:  # a clean session: subscriptions are made again every time
            client.subscribe([(topic, 1) for topic in self._subscriptions])

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        for topic_filter, handler in self._subscriptions.items():
            if paho.topic_matches_sub(topic_filter, message.topic):
                try:
                    handler(message.topic, bytes(message.payload), bool(message.retain))
                except Exception:  # an exception escaping here would kill paho's network thread
                    log.exception("handler of %s failed", message.topic)

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this from inside its `except OSError:` block without passing the exception.
        exc = sys.exc_info()[1]
        reason = str(exc) if exc is not None else "connection failed"
        if isinstance(exc, ssl.SSLError | ConnectionResetError | ConnectionAbortedError):
            reason += f" ({self._protocol_hint()})"
        if self._outage_warned:
            log.debug("MQTT broker %s still unreachable: %s", self._server, reason)
            return
        self._warn_once(
            f"MQTT broker {self._server} unreachable: {reason}; retrying in the background"
        )

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        was_connected = self._connected
        self._set_connected(False)
        if self._stopping:
            return
        if was_connected:
            self._warn_once(
                f"lost connection to MQTT broker {self._server}: {reason}; reconnecting"
            )
        elif not self._outage_warned:
            # Closed before it accepted us: the usual sign of plaintext sent to a TLS port, or
            # of a broker that wants a client certificate. Said once, not retried in silence.
            self._warn_once(
                f"MQTT broker {self._server} closed the connection before accepting it "
                f"({reason}; {self._protocol_hint()}); retrying in the background"
            )

    def _handle_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        if mid == self._online_mid:
            self._online_mid = None
            self._set_connected(True)
            return
        if self._on_delivered is not None:
            try:
                self._on_delivered(mid)
            except Exception:  # an exception escaping here would kill paho's network thread
                log.exception("on_delivered callback failed for mid %d", mid)

    def _protocol_hint(self) -> str:
        tls = "TLS" if self._config.uses_tls else "plaintext"
        return f"this client speaks {tls}: does the port expect the other, or a client certificate?"

    def _warn_once(self, message: str) -> None:
        """Log ``message`` at warning once per outage; repeats go to debug."""
        if message in self._outage_warned:
            log.debug("%s", message)
            return
        self._outage_warned.add(message)
        log.warning("%s", message)

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        if self._on_connection_change is not None:
            try:
                self._on_connection_change(connected)
            except Exception:
                log.exception("on_connection_change callback failed")
