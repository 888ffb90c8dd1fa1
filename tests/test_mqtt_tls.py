"""MQTT over TLS against a real Mosquitto that requires client certificates.

Certificates are made here with openssl (a CA, the broker's for 127.0.0.1, a client's). Every
way of getting the connection wrong (no client certificate, plaintext to the TLS port, TLS to a
plaintext port) must be one warning that says why, not a silent retry forever.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.config import ConfigError, MqttConfig, parse_config
from monitor.mqtt.client import MqttClient
from tests.fixtures.broker import Broker, BrokerTls, Subscriber

pytestmark = pytest.mark.integration


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    files = {name: d / name for name in
             ("ca.key", "ca.crt", "server.key", "server.crt", "client.key", "client.crt")}
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", str(files["ca.key"]), "-out", str(files["ca.crt"]))
    for who, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        csr = d / f"{who}.csr"
        ext = d / f"{who}.ext"
        ext.write_text(extra + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                 "-keyout", str(files[f"{who}.key"]), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca.crt"]), "-CAkey",
                 str(files["ca.key"]), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
                 "-out", str(files[f"{who}.crt"]))
    for key in ("ca.key", "server.key", "client.key"):
        files[key].chmod(0o600)
    return files


@pytest.fixture
def tls_broker(broker_factory: Callable[..., Broker], certificates: dict[str, Path]) -> Broker:
    made = broker_factory(tls=BrokerTls(certificates["ca.crt"], certificates["server.crt"],
                                        certificates["server.key"]))
    made.start()
    return made


def _config(port: int, **overrides: Any) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, prefix="tls", client_id=f"tls-{port}",
                      reconnect_max_s=0.5, **overrides)


def _connects(client: MqttClient, within_s: float) -> bool:
    client.start()
    deadline = time.monotonic() + within_s
    while not client.is_connected and time.monotonic() < deadline:
        time.sleep(0.05)
    return client.is_connected


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "monitor.mqtt.client" and r.levelno >= logging.WARNING]


def test_a_client_certificate_connects_and_delivers(
    tls_broker: Broker, certificates: dict[str, Path]
) -> None:
    client = MqttClient(_config(
        tls_broker.port, tls_ca_file=certificates["ca.crt"],
        tls_cert_file=certificates["client.crt"], tls_key_file=certificates["client.key"]))
    try:
        assert _connects(client, 10.0), tls_broker.log_tail()
        with Subscriber(tls_broker.port, ["tls/#"], tls=certificates) as sub:
            client.publish("tls/x", "hello")
            assert sub.wait_for(lambda m: any(r.payload == "hello" for r in m), 5.0)
    finally:
        client.stop(2.0)


@pytest.mark.parametrize("wrong", ["no client certificate", "plaintext to the TLS port"])
def test_a_refused_tls_connection_is_one_warning_with_the_reason(
    tls_broker: Broker, certificates: dict[str, Path], caplog: pytest.LogCaptureFixture,
    wrong: str,
) -> None:
    overrides: dict[str, Any] = {"tls_ca_file": certificates["ca.crt"]} if wrong.startswith("no") else {}
    client = MqttClient(_config(tls_broker.port, **overrides))
    try:
        assert not _connects(client, 3.0)  # several reconnect attempts at 0.5 s
    finally:
        client.stop(1.0)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{tls_broker.port}" in warnings[0]
    if wrong.startswith("plaintext"):
        assert "this client speaks plaintext" in warnings[0]


def test_tls_to_a_plaintext_port_is_one_warning(
    broker: Broker, certificates: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client = MqttClient(_config(broker.port, tls_ca_file=certificates["ca.crt"]))
    try:
        assert not _connects(client, 3.0)
    finally:
        client.stop(1.0)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "this client speaks TLS" in warnings[0], warnings


def test_a_certificate_needs_its_key() -> None:
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file come together"):
        parse_config({"mqtt": {"tls_cert_file": __file__},
                      "cameras": [{"name": "a", "url": "rtsp://h/"}]})


def test_tls_alone_uses_the_system_ca_store_and_so_refuses_our_test_ca(
    tls_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    client = MqttClient(_config(tls_broker.port, tls=True))
    try:
        assert not _connects(client, 2.0)
    finally:
        client.stop(1.0)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "certificate verify failed" in warnings[0], warnings
