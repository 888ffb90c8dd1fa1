"""Command line: ``monitor run | check-config | events``.

Commands only parse options and call one function; errors are one line on stderr with exit code
2 (bad input: config, options) or 1 (the environment failed: database, model).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import __version__
from monitor.config import Config, ConfigError, load_config, load_database_url

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """Bad command-line input; one line."""


def parse_time(text: str) -> datetime:
    """``2026-11-25T10:00``, ``2026-11-25`` (UTC unless an offset is given) or ``15m``/``2h``/``1d`` ago."""
    match = _RELATIVE.match(text.strip())
    if match:
        try:
            return datetime.now(UTC) - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
        except OverflowError:
            raise UsageError(f"cannot read time '{text}': that age reaches before year 1") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"cannot read time '{text}': use ISO-8601 (2026-11-25T10:00Z) or an age like 15m, 2h, 1d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got '{text}'")
    return value


def _setup_logging(level: str) -> None:
    # Under systemd the journal stamps every line itself; elsewhere we add the time.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # alembic narrates every start-up ("Context impl SQLiteImpl"); only its problems matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _load(path: str) -> Config:
    return load_config(Path(path))


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config_file)
    print(f"{args.config_file}: OK ({len(config.cameras)} camera(s))")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    _setup_logging(args.log_level or config.daemon.log_level)
    from monitor.daemon import Daemon  # imports torch/ultralytics: only for commands that need it

    daemon = Daemon(config)
    daemon.install_signal_handlers()
    code = daemon.run()
    # Everything is stopped, flushed and logged. Skip the interpreter's teardown: with torch and
    # FFmpeg threads it takes seconds (eating the 5 s stop budget) and can abort if a worker
    # thread is still inside a torch call.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _database_url(args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    if args.config:
        return load_database_url(args.config)
    raise UsageError("say which database: --config FILE or --db URL")


def cmd_events(args: argparse.Namespace) -> int:
    from monitor.events import report
    from monitor.store import open_database
    from monitor.store.queries import get_event, list_events

    url = _database_url(args)
    sqlite_path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if sqlite_path and sqlite_path != ":memory:" and not Path(sqlite_path).is_file():
        raise UsageError(f"no database at {sqlite_path} (has the daemon run with this config?)")
    engine = open_database(url)
    if args.action == "show":
        if not args.event_id:
            raise UsageError("events show needs an EVENT_ID")
        event = get_event(engine, args.event_id)
        if event is None:
            raise UsageError(f"no event with id {args.event_id}")
        print(report.render_one(event))
        return EXIT_OK
    events = list_events(
        engine,
        camera=args.camera,
        kind=args.kind,
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        limit=args.limit,
    )
    sys.stdout.write(report.render(events, args.format))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Security-camera monitoring daemon: RTSP in, detector + tracker, events in "
        "SQL, alerts over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=cmd_run)

    check = commands.add_parser("check-config", help="validate a config file (exit 0 or 2)")
    check.add_argument("config_file", metavar="FILE")
    check.set_defaults(func=cmd_check_config)

    events = commands.add_parser(
        "events",
        help="list recorded events, or 'events show ID' for one with its evidence",
        description="List events newest first, or show one event with its evidence.",
    )
    events.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    events.add_argument("event_id", nargs="?", metavar="EVENT_ID")
    source = events.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="FILE", help="read the database URL from this config")
    source.add_argument("--db", metavar="URL", help="database URL, e.g. sqlite:////var/lib/monitor/monitor.db")
    events.add_argument("--camera", help="only this camera")
    events.add_argument("--kind", choices=["presence", "intrusion", "loitering"])
    events.add_argument("--since", metavar="TIME", help="started at/after: ISO-8601 or an age (2h)")
    events.add_argument("--until", metavar="TIME", help="started before: ISO-8601 or an age")
    events.add_argument(
        "--limit", type=_positive_int, default=50, help="most events shown (default 50)"
    )
    events.add_argument("--format", choices=["table", "json", "csv"], default="table")
    events.set_defaults(func=cmd_events)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from monitor.detect.yolo import DetectorError
    from monitor.mqtt.client import MqttSetupError
    from monitor.store import StoreError

    try:
        return int(args.func(args))
    except (ConfigError, UsageError) as exc:
        for line in str(exc).splitlines():
            print(f"monitor: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, DetectorError, MqttSetupError) as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # e.g. a TLS CA file that is not a certificate, a full disk
        where = f" {exc.filename}" if exc.filename else ""
        print(f"monitor: error:{where} {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
