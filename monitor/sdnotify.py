"""systemd's notify protocol (READY=1, WATCHDOG=1, STOPPING=1, STATUS=...).

A datagram to the socket named by $NOTIFY_SOCKET; a no-op when not run by systemd. Twelve lines
of stdlib, so no dependency is worth it. ``watchdog_timeout_s`` reads the watchdog timeout systemd
asks for ($WATCHDOG_USEC), as sd_watchdog_enabled(3) does.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Protocol

_USEC_PER_S = 1_000_000


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


def watchdog_timeout_s(environ: Mapping[str, str], pid: int) -> float | None:
    """systemd's watchdog timeout for process ``pid`` (the unit's WatchdogSec), in seconds.

    Args:
        environ: the process environment (systemd sets WATCHDOG_USEC, microseconds, and
            WATCHDOG_PID, the main process).
        pid: this process's id.

    Returns:
        The timeout, or None when there is no watchdog for this process: WATCHDOG_USEC unset,
        not a positive integer, or WATCHDOG_PID naming another process (the variables were
        inherited, e.g. by a child of a supervised process).
    """
    usec = _decimal(environ.get("WATCHDOG_USEC", ""))
    watched_pid = environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if watched_pid is not None and _decimal(watched_pid) != pid:
        return None
    return usec / _USEC_PER_S


def _decimal(text: str) -> int | None:
    # ASCII only: str.isdigit() also accepts digits int() refuses (e.g. superscripts). At most 20
    # digits (systemd's values are 64-bit); int() refuses very long strings anyway.
    ok = text.isascii() and text.isdigit() and len(text) <= 20
    return int(text) if ok else None
