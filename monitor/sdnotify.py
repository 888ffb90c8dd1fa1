"""systemd's notify protocol (READY=1, WATCHDOG=1, STOPPING=1, STATUS=...).

A datagram to the socket named by $NOTIFY_SOCKET; a no-op when not run by systemd. Twelve lines
of stdlib, so no dependency is worth it.
"""

from __future__ import annotations

import os
import socket
from typing import Protocol


class Notifier(Protocol):
    """Where the daemon reports its state (systemd's socket, or a test or bench listening)."""

    def notify(self, *states: str) -> None: ...


class SystemdNotifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        # A leading '@' names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *states: str) -> None:
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never block: a reader that stopped reading fills the datagram queue, and a blocked
            # send would wedge the main loop and with it shutdown.
            sock.setblocking(False)
            try:
                sock.sendto("\n".join(states).encode(), self._address)
            except OSError:
                pass  # queue full or systemd gone: a missed notification is not worth a hang
