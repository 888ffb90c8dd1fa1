"""Run the real ``monitor run`` as a subprocess, as systemd would: with a NOTIFY_SOCKET to read
READY=1 / WATCHDOG=1 from, SIGTERM to stop it, and its log captured."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import threading
import tomllib
from pathlib import Path
from typing import Any


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]], cameras: list[dict[str, Any]]) -> Path:
    """Write a TOML config (tables, then [[cameras]] with their [[cameras.zones]])."""
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    for camera in cameras:
        lines.append("[[cameras]]")
        zones = camera.get("zones", [])
        lines += [f"{k} = {toml_value(v)}" for k, v in camera.items() if k != "zones"]
        for zone in zones:
            lines.append("[[cameras.zones]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in zone.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tomllib.loads(path.read_text())  # a broken test config should fail here, not in the daemon
    return path


class DaemonProcess:
    """``python -m monitor.cli run --config FILE`` with a private NOTIFY_SOCKET."""

    def __init__(self, config: Path, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self._extra_env = env or {}  # e.g. MONITOR_SHARD for one instance of a shared file
        self.log_path = workdir / "daemon.log"
        self._notify_path = workdir / "notify.sock"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self._notify_path))
        self.notifications: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_seconds: float | None = None
        # Read notifications all the time, as systemd does: the datagram queue is short.
        self._notify.settimeout(0.2)
        self._reading = True
        self._reader = threading.Thread(target=self._read_notifications, daemon=True)
        self._reader.start()

    def _read_notifications(self) -> None:
        while self._reading:
            try:
                self.notifications.append(self._notify.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def start(self) -> DaemonProcess:
        env = {**os.environ, "NOTIFY_SOCKET": str(self._notify_path), "PYTHONUNBUFFERED": "1",
               **self._extra_env}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "--config", str(self.config)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        return self

    def wait_notified(self, state: str, timeout_s: float) -> bool:
        """Wait for a notify datagram containing ``state`` (e.g. READY=1)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(state in n.split("\n") for n in list(self.notifications)):
                return True
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM; returns the exit code and records how long the exit took."""
        assert self.process is not None
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            rc = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rc = self.process.wait()
        self.stop_seconds = time.monotonic() - started
        self._log.close()
        time.sleep(0.3)  # the reader takes what is still queued
        self._reading = False
        self._reader.join(1.0)
        self._notify.close()
        return rc

    def thread_count(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/task"))

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float, *, after: int = 0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log[after:]:
                return True
            time.sleep(0.2)
        return False
