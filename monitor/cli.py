"""Command line: ``monitor run | check-config | events``.

Commands only parse options and call one function; errors are one line on stderr with exit code
2 (bad input: config, options) or 1 (the environment failed: database, model).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import __version__
from monitor.config import (
    Config, ConfigError, DetectorConfig, load_config, load_database_url,
)
from monitor.redact import redact_url
from monitor.types import EventKind, Severity

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from monitor.bench.runner import BenchSettings

    from monitor.detect.yolo import YoloDetector
    from monitor.synth.settings import SynthSettings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """Bad command-line input; one line."""


def parse_time(text: str) -> datetime:
    """``2026-11-25T10:00``, ``2026-11-25`` (UTC unless an offset is given) or ``15m``/``2h``/``1d`` ago.

    Returns:
        An aware moment, in the offset given (else UTC).

    Raises:
        UsageError: unreadable, or not within the years 1-9999 once in UTC (the store's zone).
    """
    match = _RELATIVE.match(text.strip())
    if match:
        try:
            return datetime.now(UTC) - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
        except OverflowError:
            raise UsageError(f"cannot read time {text!r}: that age reaches before year 1") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"cannot read time {text!r}: use ISO-8601 (2026-11-25T10:00Z) or an age like 15m, 2h, 1d"
        ) from None
    if not moment.tzinfo:
        return moment.replace(tzinfo=UTC)
    try:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        moment.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"time {text!r} is outside the years 1-9999 in UTC") from None
    return moment


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got '{text}'")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got '{text}'")
    return value


# LIMIT is a signed 64-bit integer in SQLite and PostgreSQL (monitor.store.queries.MAX_LIMIT).
_MAX_ROWS = 2**63 - 1


def _row_limit(text: str) -> int:
    value = _positive_int(text)
    if value > _MAX_ROWS:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {_MAX_ROWS}, got '{text}'"
        )
    return value


def _poll_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 3600:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected seconds from 0.1 to 3600, got '{text}'")
    return value


def _printable_text(text: str) -> str:
    """A name or id to look up: no control characters, NUL bytes or undecodable argv bytes
    (no name the daemon stores has them, and the database drivers cannot bind some)."""
    if not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected printable text, got {text!r}")
    return text


def _path_text(text: str) -> str:
    """A file path or URL without control characters: open() refuses a NUL byte, and a newline
    would split the one-line error that names the file. (Undecodable bytes are allowed.)"""
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise argparse.ArgumentTypeError(f"expected a path or URL without control characters, "
                                         f"got {text!r}")
    return text


def _printable(text: str) -> str:
    """``text`` with control characters (a newline in a path, ESC) escaped, so that an error
    stays one line on the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)




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
    from monitor.detect.yolo import (
        DetectorError, backend_of, model_class_names, model_labels, pinned_model, resolve_model,
        unwatchable_labels,
    )

    try:  # a model that is missing, of another format or not the pinned one is a config error
        source = resolve_model(config.detector.model)
        backend_of(source)
        digest = pinned_model(source, config.detector.sha256)
        classes = ""
        if digest is not None:  # on disk: load it (safely) for its classes, as the daemon will
            labels = model_labels(config.detector, model_class_names(source, digest))
            if problem := unwatchable_labels(config.cameras, labels, config.detector.model):
                raise ConfigError(problem)
            classes = f", classes {', '.join(sorted(labels))}"
    except DetectorError as exc:
        raise ConfigError(str(exc)) from None
    model = f", detector {source}" + (f" sha256 {digest}{classes}" if digest
                                      else " (to be downloaded)")
    if config.temporal.decider == "temporal":
        from monitor.temporal.deciders import load_configured_checkpoint

        checkpoint = load_configured_checkpoint(config.temporal)
        model += f", temporal model {checkpoint.path} sha256 {checkpoint.sha256}"
    print(f"{args.config_file}: OK ({len(config.cameras)} camera(s){model})")
    from monitor.detect.accelerate import describe

    print(f"  the detector runs: {describe(config.detector, config.daemon.state_dir)}")
    ownership = config.daemon.ownership()
    if ownership.names is not None or ownership.shard is not None:
        owned = [camera.name for camera in config.owned(ownership).cameras]
        print(f"  this daemon runs {len(owned)} of the {len(config.cameras)} camera(s) "
              f"({ownership.describe()}): {', '.join(owned) or 'none'}")
    return EXIT_OK


def cmd_prepare(args: argparse.Namespace) -> int:
    """Make what the first start would make (the int8 export), so the first start is quick."""
    config = _load(args.config)
    _setup_logging("INFO")
    from monitor.detect.accelerate import choose_model

    choice = choose_model(config.detector, config.daemon.state_dir, config.owned().cameras)
    print(f"the detector runs: {choice.reason}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    _setup_logging(args.log_level or config.daemon.log_level)
    from monitor.daemon import Daemon  # imports torch/ultralytics: only for commands that need it

    daemon = Daemon(config, config_path=Path(args.config))
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


def _existing_database_url(args: argparse.Namespace) -> str:
    """The database URL, refusing a SQLite file that does not exist (a typo must not create an
    empty database and report that it holds nothing)."""
    url = _database_url(args)
    sqlite_path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if sqlite_path and sqlite_path != ":memory:" and not Path(sqlite_path).is_file():
        raise UsageError(f"no database at {sqlite_path} (has the daemon run with this config?)")
    return url


def cmd_events(args: argparse.Namespace) -> int:
    from monitor.events import report
    from monitor.store.db import open_database_readonly
    from monitor.store.queries import get_event, list_events

    if args.action == "show" and not args.event_id:
        raise UsageError("events show needs an EVENT_ID")
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    if args.follow and (args.action == "show" or until is not None):
        raise UsageError("--follow lists new events as they come: no 'show', no --until")
    engine = open_database_readonly(_existing_database_url(args))
    try:
        if args.follow:
            return _follow_events(engine, args, since)
        if args.action == "show":
            event = get_event(engine, args.event_id)
            if event is None:
                raise UsageError(f"no event with id {args.event_id}")
            print(report.render_one(event))
            return EXIT_OK
        events = list_events(engine, camera=args.camera, kind=args.kind, since=since, until=until,
                             limit=args.limit)
    finally:
        engine.dispose()
    sys.stdout.write(report.render(events, args.format))
    return EXIT_OK


# A row's created_at is stamped by the daemon's writer before its transaction commits: a slow
# commit makes a row visible after later ones. Each poll looks back this far (ids already
# printed are skipped), so such a row is printed late, never missed.
_FOLLOW_OVERLAP = timedelta(seconds=30)


def _follow_events(engine: Engine, args: argparse.Namespace, since: datetime | None) -> int:
    """Print events as they are recorded (oldest first), polling every ``--interval`` seconds,
    until Ctrl-C or SIGTERM. With ``--since``, events recorded from then on come first."""
    import time

    from monitor.events import report
    from monitor.store.queries import events_recorded_since

    start = since or datetime.now(UTC)
    cursor = start
    printed: dict[str, datetime] = {}  # id -> recorded at, for the overlap window only
    first = True
    while True:
        rows = events_recorded_since(engine, cursor - _FOLLOW_OVERLAP, camera=args.camera,
                                     kind=args.kind, limit=10_000)
        new = [(at, e) for at, e in rows if e.id not in printed and at >= start]
        if new or first:
            sys.stdout.write(report.render_followed([e for _, e in new], args.format, first=first))
            sys.stdout.flush()
        first = False
        for at, event in new:
            printed[event.id] = at
        if rows:
            cursor = max(cursor, max(at for at, _ in rows))
        printed = {i: at for i, at in printed.items() if at >= cursor - 2 * _FOLLOW_OVERLAP}
        time.sleep(args.interval)


def cmd_reviews(args: argparse.Namespace) -> int:
    from monitor.events import report
    from monitor.store.db import open_database_readonly
    from monitor.store.queries import get_review, list_reviews

    if args.action == "show" and not args.review_id:
        raise UsageError("reviews show needs a REVIEW_ID")
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    engine = open_database_readonly(_existing_database_url(args))
    try:
        if args.action == "show":
            review = get_review(engine, args.review_id)
            if review is None:
                raise UsageError(f"no review with id {args.review_id}")
            sys.stdout.write(report.render_reviews([review], "json"))
            return EXIT_OK
        reviews = list_reviews(engine, camera=args.camera, severity=args.severity, since=since,
                               until=until, limit=args.limit)
    finally:
        engine.dispose()
    sys.stdout.write(report.render_reviews(reviews, args.format))
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
    from monitor.store import open_database
    from monitor.store.queries import set_operator_label
    from monitor.temporal.model import LABELS

    if args.kind not in LABELS:
        raise UsageError(f"unknown kind '{args.kind}'; known: {', '.join(LABELS)}")
    event = set_operator_label(
        open_database(_existing_database_url(args)), args.event_id, args.kind
    )
    if event is None:
        raise UsageError(f"no event with id {args.event_id}")
    print(f"event {event.id} ({event.kind.value} on {event.camera}) labelled '{args.kind}'")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from monitor.temporal.train import TrainSettings, labelled_tracks, train

    settings = TrainSettings(
        seed=args.seed,
        tracks_per_behaviour=args.tracks_per_behaviour,
        epochs=args.epochs,
        kind=args.kind,
        window=args.window,
        step_s=args.step_s,
    )
    try:
        settings.spec  # noqa: B018 - validates window and step_s before minutes of work
    except ValueError as exc:
        raise UsageError(f"train: {exc}") from None
    extra = []
    if args.from_db:
        if not (args.db or args.config):
            raise UsageError("--from-db needs --config FILE or --db URL")
        from monitor.store.db import open_database_readonly
        from monitor.store.queries import labelled_events

        extra = labelled_tracks(
            labelled_events(open_database_readonly(_existing_database_url(args))), settings
        )
        print(f"{len(extra)} operator-labelled event(s) from the database")
        if not extra:
            raise UsageError("--from-db: no labelled, ended events with track data "
                             "(label some with 'monitor label EVENT_ID KIND')")
    # Recorded in the checkpoint, which is shipped: never a database password.
    command = (
        "monitor " + " ".join(redact_url(a) for a in sys.argv[1:]) if sys.argv[0].endswith("monitor") else ""
    )
    train(settings, Path(args.out), extra_tracks=extra, command=command, progress=not args.quiet)
    return EXIT_OK


def _real_detector(config: Config | None) -> YoloDetector:
    """The configured (or default) detector, loaded and warmed up."""
    from monitor.config import DetectorConfig
    from monitor.detect.yolo import YoloDetector
    from monitor.synth.settings import SynthSettings

    detector = YoloDetector(config.detector if config else DetectorConfig())
    detector.warm_up()
    return detector


def cmd_synth(args: argparse.Namespace) -> int:
    import numpy as np

    from monitor.detect.yolo import YoloDetector
    from monitor.synth.settings import SynthSettings
    from monitor.errors import first_line
    from monitor.synth.compose import SynthSettings, generate_clips
    from monitor.synth.crops import CropError
    from monitor.synth.plan import PlanError
    from monitor.synth.video import FootageError
    from monitor.types import Frame

    footage = Path(args.footage).expanduser()
    if not footage.is_file():
        raise UsageError(f"no such footage file: {footage}")
    detector = _real_detector(None)

    def detect(image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        frame = Frame("synth", 0, image, datetime.now(UTC), 0.0)
        found = detector.detect([frame])[0].items
        return [(d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score) for d in found]

    out = Path(args.out)
    settings = SynthSettings()
    try:
        clips = generate_clips(
            footage, out, seed=args.seed, per_kind=args.per_kind, detect=detect,
            settings=settings, progress=lambda message: print(message, file=sys.stderr),
        )
    except (FootageError, CropError, PlanError, ValueError) as exc:
        raise UsageError(f"synth: {first_line(exc)}") from None
    _write_eval_config(out, clips[0].name, settings)
    print(f"wrote {len(clips)} clips, {out / 'annotations.json'} and {out / 'eval.toml'}")
    return EXIT_OK


def _write_eval_config(out: Path, first_clip: str, settings: SynthSettings) -> None:
    """The settings 'monitor eval' uses on these clips: each clip is a camera with the zone
    (loitering, crowds) and the line the clips were labelled with."""
    polygon = ", ".join(f"[{x:.3f}, {y:.3f}]" for x, y in settings.zone)
    points = ", ".join(f"[{x:.3f}, {y:.3f}]" for x, y in settings.line)
    (out / "eval.toml").write_text(
        "# Written by 'monitor synth': the settings 'monitor eval' applies to every clip here.\n"
        "# The camera's url is only a placeholder; each clip is evaluated as its own camera.\n"
        "[tracker]\n# Lying and far-away people score 0.4-0.5 with the default model: let them\n"
        "# start tracks (events still need confirmation).\nactivation_score = 0.3\n\n"
        f"[events]\nloitering_s = {settings.loitering_s:g}\nconfirm_min_score = 0.45\n\n"
        f"[[cameras]]\nname = \"clip\"\nurl = \"{first_clip}\"\n"
        f"detect_fps = {settings.fps / 2:g}\n\n"
        f"[[cameras.zones]]\nname = \"zone\"\npolygon = [{polygon}]\n"
        f"crowd = {{ min_objects = {settings.crowd_size}, for_s = {settings.crowd_for_s:g} }}\n\n"
        f"[[cameras.lines]]\nname = \"line\"\npoints = [{points}]\n"
        f"hysteresis = {settings.line_hysteresis:g}\n"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from monitor.detect.yolo import YoloDetector
    from monitor.synth.settings import SynthSettings
    from monitor.evaluate.annotations import AnnotationError, load_annotations
    from monitor.evaluate.matching import format_table, to_json
    from monitor.evaluate.runner import EvalError, list_clips, run_eval
    from monitor.temporal.deciders import load_configured_checkpoint

    folder = Path(args.clips)
    config_path = Path(args.config) if args.config else folder / "eval.toml"
    if not config_path.is_file():
        raise UsageError(f"no eval config at {config_path}: pass --config FILE "
                         "(a monitor config; its first camera's zones and detect_fps apply)")
    config = _load(str(config_path))
    try:
        truth = load_annotations(Path(args.annotations))
        clips = list_clips(folder)
    except (AnnotationError, EvalError) as exc:
        raise UsageError(str(exc)) from None
    checkpoint = load_configured_checkpoint(config.temporal)
    detector = _real_detector(config)
    try:
        report = run_eval(clips, truth, detector, config, checkpoint, min_iou=args.min_iou,
                          progress=not args.quiet)
    except EvalError as exc:
        raise UsageError(str(exc)) from None
    print(f"{len(clips)} clips, {len(truth)} labelled events, model {checkpoint.name} "
          f"(sha256 {checkpoint.sha256[:12]}…)")
    print(format_table(report.scores, min_iou=args.min_iou))
    counts = report.predicted_counts()
    fall_boxes = sum(c.fall_boxes for c in report.clips)
    print(f"per-frame 'Fall' boxes: {fall_boxes}; predicted events: "
          + "; ".join(f"{d} {dict(k)}" for d, k in counts.items()))
    if args.plot:
        from monitor.evaluate.plot import plot_timeline

        plot_timeline(
            Path(args.plot), [c.clip for c in report.clips], truth,
            {c.clip: c.predicted for c in report.clips},
            durations={c.clip: c.seconds for c in report.clips},
        )
        print(f"timeline: {args.plot}")
    if args.json:
        data = {
            "clips": [c.clip for c in report.clips],
            "labelled": len(truth),
            "min_iou": args.min_iou,
            "checkpoint": {"name": checkpoint.name, "sha256": checkpoint.sha256},
            "scores": to_json(report.scores),
            "predicted": counts,
            "fall_boxes": fall_boxes,
            "events": {
                c.clip: {d: [[i.kind, i.start, i.end] for i in v] for d, v in c.predicted.items()}
                for c in report.clips
            },
            # Line crossings counted per clip (the same for every decider: one tracker).
            "crossings": {
                c.clip: {f"{line}/{label}/{direction.value}": n
                         for (line, label, direction), n in c.crossings.items()}
                for c in report.clips
            },
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "temporal":
        return _bench_temporal(args)
    from monitor.bench.runner import BenchRunError, BenchSettings, format_table, run_bench

    footage = Path(args.footage).expanduser()
    if not footage.is_file():
        raise UsageError(f"footage {footage}: no such file (scripts/setup.sh fetches vtest.avi)")
    if args.config:
        load_config(Path(args.config))  # one-line errors now, not in a child process
    if args.model:
        from monitor.detect.yolo import resolve_model

        resolve_model(args.model)  # DetectorError: one line
    if args.source and not args.source.lower().startswith(("rtsp://", "rtsps://", "http")):
        raise UsageError(f"--source '{redact_url(args.source)}': expected an rtsp:// or http(s):// URL")
    host, _, port = args.mqtt.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--mqtt '{args.mqtt}': expected HOST:PORT")
    settings = BenchSettings(
        cameras=args.cameras, scene=args.scene, footage=footage, seconds=args.seconds,
        config=Path(args.config) if args.config else None, mqtt_host=host,
        mqtt_port=int(port), naive=not args.no_naive,
        cache_dir=Path(args.cache_dir).expanduser(), source_url=args.source, model=args.model,
    )
    from monitor.synth.crops import CropError
    from monitor.synth.video import FootageError

    if args.find_max:
        return _bench_find_max(args, settings)
    try:
        report = run_bench(settings, lambda line: print(line, flush=True))
    except (BenchRunError, FootageError, CropError) as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print()
    print(format_table(report))
    out = Path(args.json or f"bench-{args.scene}-{args.cameras}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {out}")
    if args.plot:
        from monitor.bench.plot import plot_report

        plot_report(report, Path(args.plot))
        print(f"written: {args.plot}")
    return EXIT_OK


def _bench_find_max(args: argparse.Namespace, settings: BenchSettings) -> int:
    from monitor.bench.runner import BenchRunError
    from monitor.bench.search import find_max, format_search
    from monitor.synth.crops import CropError
    from monitor.synth.video import FootageError

    try:
        report = find_max(settings, lambda line: print(line, flush=True), most=args.max_cameras)
    except (BenchRunError, FootageError, CropError) as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print()
    print(format_search(report))
    out = Path(args.json or f"bench-find-max-{args.scene}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {out}")
    if args.plot:
        from monitor.bench.plot import plot_search

        plot_search(report, Path(args.plot))
        print(f"written: {args.plot}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from monitor.detect.export import ExportError, export_model

    footage = Path(args.calibration).expanduser() if args.calibration else None
    if footage is not None and not args.int8:
        raise UsageError("--calibration is only used with --int8")
    try:
        made = export_model(args.model, args.format, Path(args.out), imgsz=args.imgsz,
                            half=args.half, int8=args.int8, calibration_video=footage)
    except ExportError as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"exported {args.model} -> {made.resolve()}")
    print(f'use it with [detector] model = "{made.resolve()}"')
    return EXIT_OK


def _bench_temporal(args: argparse.Namespace) -> int:
    import dataclasses

    from monitor.temporal.bench import measure
    from monitor.temporal.checkpoint import load_checkpoint
    from monitor.temporal.deciders import packaged_checkpoint

    checkpoint = load_checkpoint(args.checkpoint or packaged_checkpoint())  # one-line errors
    print(f"temporal decider, one torch thread, model {checkpoint.name} "
          f"({checkpoint.architecture.kind}, window {checkpoint.spec.window})")
    print(f"{'tracks':>6}  {'step median ms':>14}  {'step p95 ms':>11}  {'score ms':>8}")
    rows = []
    for tracks in args.tracks:
        cost = measure(checkpoint, tracks, repeats=args.repeats)
        rows.append(cost)
        print(f"{cost.tracks:>6}  {cost.median_ms:>14.3f}  {cost.p95_ms:>11.3f}  "
              f"{cost.score_ms:>8.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"checkpoint": checkpoint.sha256, "rows": [dataclasses.asdict(c) for c in rows]},
            indent=2) + "\n")
    return EXIT_OK


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got '{text}'")
    return value


def _track_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts like 1,5,20, got '{text}'")
    return counts


def _database_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config", type=_path_text, metavar="FILE", help="read the database URL from this config"
    )
    source.add_argument(
        "--db", type=_path_text, metavar="URL",
        help="database URL, e.g. sqlite:////var/lib/monitor/monitor.db",
    )


def _listing_options(
    parser: argparse.ArgumentParser, noun: str, filter_flag: str, filter_choices: list[str]
) -> None:
    """``list``/``show ID`` and the filters ``monitor events`` and ``monitor reviews`` share."""
    parser.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    parser.add_argument(f"{noun}_id", nargs="?", type=_printable_text, metavar=f"{noun.upper()}_ID")
    _database_options(parser)
    parser.add_argument("--camera", type=_printable_text, help="only this camera")
    parser.add_argument(filter_flag, choices=filter_choices)
    parser.add_argument("--since", metavar="TIME", help="started at/after: ISO-8601 or an age (2h)")
    parser.add_argument("--until", metavar="TIME", help="started before: ISO-8601 or an age")
    parser.add_argument(
        "--limit", type=_row_limit, default=50, help=f"most {noun}s shown (default 50)"
    )
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")


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

    prepare = commands.add_parser(
        "prepare", help="make the int8 detector export the first start would make (~1 min)")
    prepare.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    prepare.set_defaults(func=cmd_prepare)

    events = commands.add_parser(
        "events",
        help="list recorded events, or 'events show ID' for one with its evidence",
        description="List events newest first, or show one event with its evidence.",
    )
    _listing_options(events, "event", "--kind", [kind.value for kind in EventKind])
    events.add_argument("--follow", "-f", action="store_true",
                        help="keep running: print each new event as it is recorded")
    events.add_argument("--interval", type=_poll_interval, default=1.0, metavar="SECONDS",
                        help="how often --follow looks (default 1)")
    events.set_defaults(func=cmd_events)

    reviews = commands.add_parser(
        "reviews",
        help="list review items (one per period of activity on a camera, grouping its events)",
        description="List review items newest first, or show one with its event ids.",
    )
    _listing_options(reviews, "review", "--severity", [s.value for s in Severity])
    reviews.set_defaults(func=cmd_reviews)

    label = commands.add_parser(
        "label", help="say what an event really was (training data for 'train --from-db')"
    )
    label.add_argument("event_id", metavar="EVENT_ID")
    label.add_argument("kind", metavar="KIND", help="normal, loitering, running or fall")
    _database_options(label)
    label.set_defaults(func=cmd_label)

    train = commands.add_parser(
        "train", help="train the temporal model on simulated (and labelled) tracks",
        description="Train the temporal classifier: simulated tracks of every behaviour, plus "
        "operator-labelled events with --from-db; split by track, class-weighted, early stopping "
        "on validation macro-F1. Writes a checkpoint with its SHA-256.",
    )
    train.add_argument("--out", default="temporal.pt", metavar="FILE", help="checkpoint to write")
    train.add_argument("--seed", type=int, default=7, help="one seed for everything (default 7)")
    train.add_argument("--tracks-per-behaviour", type=_positive_int, default=500, metavar="N")
    train.add_argument("--epochs", type=_positive_int, default=60, help="most epochs")
    train.add_argument("--kind", choices=["gru", "transformer"], default="gru")
    train.add_argument("--window", type=_positive_int, default=40, help="steps per window")
    train.add_argument("--step-s", type=float, default=0.2, help="seconds per step")
    train.add_argument("--from-db", action="store_true", help="add operator-labelled events")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _database_options(train)
    train.set_defaults(func=cmd_train)

    synth = commands.add_parser(
        "synth", help="compose labelled clips of real people walking, running, loitering, falling"
    )
    synth.add_argument("footage", metavar="FOOTAGE", help="real footage to cut people from")
    synth.add_argument("out", metavar="OUT_DIR")
    synth.add_argument("--seed", type=int, default=1000,
                       help="clip seed (tests use 2000+; training never uses generated clips)")
    synth.add_argument("--per-kind", type=_positive_int, default=4, help="clips of each kind")
    synth.set_defaults(func=cmd_synth)

    evaluate = commands.add_parser(
        "eval", help="event precision/recall/F1 per kind on labelled clips, per decider"
    )
    evaluate.add_argument("clips", metavar="CLIPS", help="folder of video clips")
    evaluate.add_argument("annotations", metavar="ANNOTATIONS", help="JSON or CSV: clip,kind,start,end")
    evaluate.add_argument("--config", metavar="FILE", help="default: CLIPS/eval.toml")
    evaluate.add_argument("--min-iou", type=_fraction, default=0.3,
                          help="temporal IoU of a match, in (0, 1] (default 0.3)")
    evaluate.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    evaluate.add_argument("--plot", metavar="PNG", help="also draw every clip's events on a timeline")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=cmd_eval)

    bench = commands.add_parser(
        "bench", help="throughput against the naive loop (or: bench temporal)",
        description="pipeline (default): N cameras play a scene at its native fps through the "
        "daemon; the naive loop and the limits are measured in the same run. temporal: the cost "
        "of one camera-step of the temporal decider.")
    bench.add_argument("what", nargs="?", choices=["pipeline", "temporal"], default="pipeline")
    bench.add_argument("--cameras", type=_positive_int, default=4, help="default 4")
    bench.add_argument("--scene", choices=["busy", "quiet"], default="busy",
                       help="busy: the real footage; quiet: its empty background, a walker now "
                       "and then (default busy)")
    bench.add_argument("--seconds", type=_positive_float, default=60.0,
                       help="measured window of each side (default 60)")
    bench.add_argument("--footage", default="~/.cache/monitor/footage/vtest.avi",
                       help="the real footage (default: where scripts/setup.sh puts vtest.avi)")
    bench.add_argument("--config", metavar="FILE",
                       help="use this config's detector, motion, events... (default: defaults)")
    bench.add_argument("--mqtt", default="127.0.0.1:1883", metavar="HOST:PORT",
                       help="broker the alerts go through (default 127.0.0.1:1883)")
    bench.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    bench.add_argument("--find-max", action="store_true",
                       help="search the largest real-time camera count (daemon only), from "
                       "--cameras up by doubling, then by bisection")
    bench.add_argument("--max-cameras", type=_positive_int, default=32,
                       help="--find-max: never more cameras than this (default 32)")
    bench.add_argument("--model", help="the daemon's detector model, e.g. from 'monitor "
                       "export' (default: the config's, else the packaged .pt; the naive loop "
                       "always runs that one)")
    bench.add_argument("--source", metavar="URL",
                       help="a live stream (rtsp://) every camera reads instead of the scene")
    bench.add_argument("--cache-dir", default="~/.cache/monitor/bench",
                       help="where the quiet scene is kept")
    bench.add_argument("--plot", metavar="PNG", help="also draw the comparison")
    bench.add_argument("--tracks", type=_track_counts, default=[1, 5, 20, 50],
                       help="temporal: live tracks per camera, comma-separated (default 1,5,20,50)")
    bench.add_argument("--repeats", type=_positive_int, default=200, help="temporal: repeats")
    bench.add_argument("--checkpoint", metavar="FILE", help="temporal: default the packaged model")
    bench.add_argument("--json", metavar="FILE",
                       help="also write the results as JSON (pipeline: default "
                       "bench-SCENE-N.json)")
    bench.set_defaults(func=cmd_bench)

    export = commands.add_parser(
        "export", help="export the detector to ONNX or OpenVINO (faster on CPU)")
    export.add_argument("--model", default=DetectorConfig().model,
                        help="the .pt model (default: the packaged person model)")
    export.add_argument("--format", choices=["onnx", "openvino"], required=True)
    export.add_argument("--out", required=True,
                        help="FILE.onnx, or a DIR ending in _openvino_model")
    export.add_argument("--imgsz", type=_positive_int, default=640)
    export.add_argument("--half", action="store_true", help="FP16 weights (openvino)")
    export.add_argument("--int8", action="store_true",
                        help="INT8, calibrated on --calibration footage (openvino)")
    export.add_argument("--calibration", metavar="VIDEO",
                        help="footage for int8 calibration (e.g. vtest.avi)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from monitor.detect.yolo import DetectorError
    from monitor.mqtt.client import MqttSetupError
    from monitor.store import StoreError
    from monitor.temporal.checkpoint import CheckpointError

    try:
        return int(args.func(args))
    except (ConfigError, UsageError) as exc:
        for line in str(exc).split("\n"):  # one line per problem
            print(f"monitor: error: {_printable(line)}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, DetectorError, MqttSetupError, CheckpointError) as exc:
        print(f"monitor: error: {_printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # e.g. a TLS CA file that is not a certificate, a full disk
        where = f" {exc.filename}" if exc.filename else ""
        print(f"monitor: error:{_printable(where)} {_printable(str(exc.strerror or exc))}",
              file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
