"""How the daemon runs and talks to the world: broker, database, camera sources, daemon, retention."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from pydantic import Field, FilePath, field_validator, model_validator

from monitor.config.base import NAME_MAX_LENGTH, ConfigError, _Strict
from monitor.config.ownership import Ownership, parse_shard
from monitor.redact import redact_url


class MqttConfig(_Strict):
    host: str = Field(
        "127.0.0.1", min_length=1, max_length=253, pattern=r"^[^\s/@]+$",
        description="Broker host name or address.",
    )
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port.")
    prefix: str = Field(
        "monitor", min_length=1, max_length=128,
        description="Topic prefix: {prefix}/events/... (at most 128 characters: with names of "
        "at most 64, every topic fits the store's 512).",
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
        description="MQTT client id; default monitor-<host>-<pid>. Letters, digits and ._:- only "
        "(the characters every broker accepts).",
    )
    username: str | None = Field(None, description="Broker user; or env MONITOR_MQTT_USERNAME.")
    password: str | None = Field(None, description="Broker password; prefer password_file or env.")
    password_file: FilePath | None = Field(None, description="File whose first line is the password.")
    tls: bool = Field(
        False, description="TLS to the broker, verified against the system's CA store unless "
        "tls_ca_file is set. Setting any tls_* file turns it on too.",
    )
    tls_ca_file: FilePath | None = Field(None, description="CA certificate: enables TLS when set.")
    tls_cert_file: FilePath | None = Field(
        None, description="Client certificate (PEM), for a broker that requires one; with tls_key_file."
    )
    tls_key_file: FilePath | None = Field(
        None, description="The client certificate's private key (PEM, unencrypted: the daemon "
        "cannot be asked for a passphrase). Keep it readable by the daemon only.",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval.")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="Cap of the reconnect backoff.")
    max_inflight: int = Field(20, ge=1, le=1000, description="Unacknowledged QoS 1 messages at once.")
    snapshot_width: int = Field(
        640, ge=0, le=7680, description="The newest event's picture on {prefix}/{camera}/snapshot "
        "(retained JPEG), scaled down to this width; 0: not published.",
    )

    @field_validator("prefix")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if any(c in value for c in "#+") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must not contain '#' or '+' or start/end with '/'")
        return value

    @model_validator(mode="after")
    def _certificate_with_key(self) -> MqttConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file come together: set both or neither")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca_file is not None or self.tls_cert_file is not None

    def resolved_password(self) -> str | None:
        """The password from env MONITOR_MQTT_PASSWORD, password_file or password, in that order."""
        if env := os.environ.get("MONITOR_MQTT_PASSWORD"):
            return env
        if self.password_file is not None:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0].strip() if lines else ""
        return self.password

    def resolved_username(self) -> str | None:
        return os.environ.get("MONITOR_MQTT_USERNAME") or self.username


class DatabaseConfig(_Strict):
    url: str = Field(
        "sqlite:///monitor.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db. "
        "A relative SQLite path is taken relative to [daemon] state_dir.",
    )
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000, description="SQLite busy timeout.")

    @field_validator("url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError(
                f"unsupported database URL '{redact_url(value)}': use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DB"
            )
        if value.startswith("postgresql") and any(c.isspace() for c in value):
            raise ValueError("a URL must not contain whitespace (write a space as %20)")
        return value
    writer_queue_size: int = Field(10000, ge=10, le=1_000_000, description="Events waiting for the writer thread.")
    outbox_retention_h: float = Field(
        168.0, gt=0, le=87_600, description="Alerts the broker acknowledged are deleted from the outbox after this."
    )


class HomeAssistantConfig(_Strict):
    """Home Assistant MQTT discovery: entities appear in Home Assistant without YAML."""

    enabled: bool = Field(True, description="Publish discovery configs (retained).")
    discovery_prefix: str = Field(
        "homeassistant", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Home Assistant's discovery prefix (its MQTT integration's setting).",
    )


class MetricsConfig(_Strict):
    """Prometheus metrics over HTTP, and the ``{prefix}/stats/{instance}`` topic."""

    enabled: bool = Field(False, description="Serve Prometheus metrics on host:port/metrics.")
    host: str = Field(
        "127.0.0.1", min_length=1, max_length=253, pattern=r"^[^\s/@]+$",
        description="Address the metrics endpoint listens on (0.0.0.0: every interface).",
    )
    port: int = Field(9178, ge=1, le=65535, description="Its TCP port.")
    stats_interval_s: float = Field(
        15.0, ge=0, le=3600,
        description="Publish {prefix}/stats/{instance} this often (0: never).",
    )


class SourceConfig(_Strict):
    open_timeout_s: float = Field(5.0, gt=0, le=600, description="Bound on opening a stream.")
    read_timeout_s: float = Field(2.0, gt=0, le=600, description="Bound on one frame read.")
    stall_timeout_s: float = Field(10.0, gt=0, le=3600, description="No frame for this long -> reopen.")
    reconnect_initial_s: float = Field(0.5, gt=0, le=3600, description="First reconnect delay.")
    reconnect_max_s: float = Field(30.0, gt=0, le=86_400, description="Cap of the exponential backoff.")
    capture_nice: int = Field(
        5, ge=0, le=19, description="Capture threads run this much nicer than the inference "
        "thread (Linux): the runtime's threads work in lock-step, so a capture thread taking a "
        "core mid-inference stalls all of them; decoding can wait a few milliseconds.",
    )
    offline_event_s: float = Field(
        60.0, ge=1, le=86_400, description="A camera without frames this long gets a "
        "camera_offline event (its status topic says offline at once).",
    )

    @model_validator(mode="after")
    def _stall_after_read(self) -> SourceConfig:
        if self.read_timeout_s >= self.stall_timeout_s:
            raise ValueError(
                f"read_timeout_s ({self.read_timeout_s}) must be less than "
                f"stall_timeout_s ({self.stall_timeout_s})"
            )
        return self

    @model_validator(mode="after")
    def _backoff_order(self) -> SourceConfig:
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_initial_s ({self.reconnect_initial_s}) must not exceed "
                f"reconnect_max_s ({self.reconnect_max_s})"
            )
        return self


def default_instance() -> str:
    """This machine's host name as an instance id: its first label, in topic-safe characters."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:NAME_MAX_LENGTH]
    return name or "monitor"


class DaemonConfig(_Strict):
    instance: str = Field(
        default_factory=default_instance, min_length=1, max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="This daemon's id among several sharing one database and broker: each "
        "publishes only the alerts it recorded, and has its own availability topic "
        "{prefix}/available/{instance}. Default: the host name. Two running daemons must not "
        "share one (the second refuses to start).",
    )
    cameras: list[str] | None = Field(
        None, min_length=1, max_length=10_000,
        description="Scale-out: the names of the cameras this daemon runs (the others in the "
        "file belong to other daemons). Not with shard. Neither: every camera. Env "
        "MONITOR_CAMERAS (comma-separated) replaces it.",
    )
    shard: str | None = Field(
        None, max_length=16,
        description="Scale-out: \"i/n\" runs the cameras whose name's SHA-256 is i modulo n "
        "(the same on every machine), so n daemons with shards 0/n .. n-1/n split one camera "
        "list between them. Not with cameras. Env MONITOR_SHARD replaces it.",
    )
    state_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("STATE_DIRECTORY", "./var")),
        description="Snapshots and the SQLite file live here; systemd's StateDirectory by default.",
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    shutdown_timeout_s: float = Field(4.0, gt=0, le=60, description="Budget for a clean stop.")
    outbox_flush_timeout_s: float = Field(
        2.0, ge=0, le=60, description="Part of it spent flushing alerts."
    )
    watchdog_interval_s: float = Field(
        5.0, gt=0, le=3600, description="How often WATCHDOG=1 is sent. Under systemd's watchdog "
        "($WATCHDOG_USEC, the unit's WatchdogSec) at most half of it, so one late ping is not a "
        "restart.",
    )
    worker_stall_s: float = Field(
        20.0, gt=0, le=3600, description="Inference loop stuck this long -> WATCHDOG=1 is withheld "
        "and systemd restarts the service WatchdogSec later. Must be less than WatchdogSec (30 s "
        "in the unit), so a wedged detector is restarted within twice WatchdogSec; otherwise the "
        "daemon refuses to start (exit 2) rather than quietly change a value chosen in the file. "
        "A model slower than this per round of inference needs both raised.",
    )
    opencv_threads: int = Field(
        1, ge=1, le=64, description="OpenCV's worker threads for image operations (motion, "
        "resizing, packing). Every camera already has a thread of its own, and OpenCV's pool "
        "busy-waits between calls, taking cores from inference: one means each call runs in "
        "its caller (motion on a 768x576 frame: 0.39 CPU-ms with 1, 0.74 with 2).",
    )

    @field_validator("shard")
    @classmethod
    def _valid_shard(cls, value: str | None) -> str | None:
        if value is not None:
            parse_shard(value)  # its ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _one_way_to_own(self) -> DaemonConfig:
        if self.cameras is not None and self.shard is not None:
            raise ValueError("set cameras or shard, not both: either names this daemon's cameras")
        return self

    def ownership(self) -> Ownership:
        """Which of the file's cameras this daemon runs."""
        return Ownership(
            names=None if self.cameras is None else frozenset(self.cameras),
            shard=None if self.shard is None else parse_shard(self.shard),
        )

    @model_validator(mode="after")
    def _flush_fits_the_budget(self) -> DaemonConfig:
        if self.outbox_flush_timeout_s >= self.shutdown_timeout_s:
            raise ValueError(
                f"outbox_flush_timeout_s ({self.outbox_flush_timeout_s}) must be less than "
                f"shutdown_timeout_s ({self.shutdown_timeout_s})"
            )
        return self

    def watchdog_ping_interval_s(self, watchdog_timeout_s: float | None) -> float:
        """How often to send WATCHDOG=1 under systemd's watchdog timeout.

        Args:
            watchdog_timeout_s: systemd's WatchdogSec in seconds (``watchdog_timeout_s()`` in
                ``monitor.sdnotify``), None when no watchdog is asked for.

        Returns:
            ``watchdog_interval_s``, at most half the timeout (as sd_watchdog_enabled(3) advises).

        Raises:
            ConfigError: ``worker_stall_s`` is not less than the timeout.
        """
        if watchdog_timeout_s is None:
            return self.watchdog_interval_s
        if self.worker_stall_s >= watchdog_timeout_s:
            # Refused, not clamped: the operator chose the value, and a warning is easy to miss.
            raise ConfigError(
                f"daemon.worker_stall_s ({self.worker_stall_s:g} s) must be less than systemd's "
                f"watchdog timeout (WatchdogSec, {watchdog_timeout_s:g} s from WATCHDOG_USEC): "
                f"lower worker_stall_s or raise WatchdogSec"
            )
        return min(self.watchdog_interval_s, watchdog_timeout_s / 2)


class RetentionConfig(_Strict):
    """What is deleted and when (docs/reliability.md, Retention). An event whose alert is not
    delivered yet is never deleted, and no stored event is left pointing to a deleted file."""

    events_days: int = Field(
        30, ge=0, le=36_500, description="Ended events are deleted this many days after their "
        "end, with their delivered outbox rows and the reviews left without events. 0: kept "
        "forever.",
    )
    snapshots_days: int = Field(
        14, ge=0, le=36_500, description="Snapshots of events that ended this many days ago are "
        "deleted (the event stays, without one); files no event points to go at this age too. "
        "0: a snapshot is kept as long as its event. At most events_days.",
    )
    snapshots_max_bytes: int = Field(
        5 * 1024**3, ge=0, le=2**50, description="Cap of the snapshot folder: over it the oldest "
        "snapshots go first. 0: no cap.",
    )
    interval_s: float = Field(3600.0, ge=1, le=604_800, description="How often the cleaner runs.")
    first_run_delay_s: float = Field(
        60.0, ge=0, le=86_400, description="The first run, this long after start-up.",
    )
    retry_s: float = Field(
        60.0, ge=1, le=86_400, description="A run that failed (database away) is retried after this.",
    )
    batch_rows: int = Field(
        500, ge=1, le=10_000, description="Rows per transaction: a long backlog is deleted in "
        "short transactions between alerts, never holding SQLite's write lock for long.",
    )
    vacuum: bool = Field(
        True, description="SQLite: give the pages freed by deleting back to the file system "
        "(PRAGMA incremental_vacuum).",
    )
    vacuum_step_pages: int = Field(
        1024, ge=1, le=1_000_000, description="Pages per incremental vacuum transaction (4 MiB "
        "at SQLite's 4 KiB pages).",
    )
    stray_file_age_s: float = Field(
        3600.0, ge=60, le=604_800, description="Temporary snapshot files (*.tmp) older than this "
        "are removed; the byte cap never takes a younger file (its event may still be on its "
        "way to the database).",
    )
    keep_labelled: bool = Field(
        True, description="Events an operator labelled (training data) are not deleted by age.",
    )

    @model_validator(mode="after")
    def _snapshots_within_events(self) -> RetentionConfig:
        if self.events_days and self.snapshots_days > self.events_days:
            raise ValueError(
                f"snapshots_days ({self.snapshots_days}) must not exceed events_days "
                f"({self.events_days}): a snapshot is deleted with its event; use 0 to keep "
                "snapshots as long as their events"
            )
        return self
