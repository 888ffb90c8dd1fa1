"""No alert is ever dropped by a column constraint: what the config accepts, the store holds.

PostgreSQL enforces VARCHAR lengths (SQLite does not): a zone name, label or topic longer than
its column once made the whole transaction, alert and outbox row, fail for good. The config now
bounds every name and the prefix so that the longest topic and snapshot path fit; this runs the
real pipeline and the daemon's store sink with every name at its longest, on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.config import ConfigError, parse_config
from monitor.store.sink import StoreSink
from monitor.events.snapshot import SnapshotWriter
from monitor.pipeline import build_camera_pipeline
from monitor.store import EventWriter, open_database
from monitor.store.models import EventRow, OutboxRow
from tests.builders import make_detection, make_detections

pytestmark = pytest.mark.integration

LONGEST = 64


def longest_config(state_dir: Path) -> dict[str, object]:
    return {
        "daemon": {"state_dir": str(state_dir)},
        "mqtt": {"prefix": "/".join(["p" * 31] * 4)},  # 127 characters, four levels
        "events": {"confirm_frames": 2, "loitering_s": 2.0, "end_after_s": 1.0},
        "temporal": {"decider": "off"},
        "cameras": [{
            "name": "c" * LONGEST, "url": "rtsp://127.0.0.1/x", "labels": ["l" * LONGEST],
            "zones": [{"name": "z" * LONGEST, "polygon": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]],
                       "crowd": {"label": "l" * LONGEST, "min_objects": 2, "for_s": 1.0}}],
            "lines": [{"name": "n" * LONGEST, "points": [[0.4, 0], [0.4, 1]]}],
        }],
        "detector": {"class_labels": {"Normal": "l" * LONGEST}},
    }


def test_every_name_at_its_longest_is_stored_and_queued_on_postgres(
    postgres_url: str, tmp_path: Path
) -> None:
    # A deep state directory: the snapshot path, built from it, is stored too.
    state_dir = tmp_path.joinpath(*["s" * 200] * 3)
    config = parse_config(longest_config(state_dir))
    camera = config.cameras[0]
    engine = open_database(postgres_url)
    writer = EventWriter(engine, retry_initial_s=0.05, retry_max_s=0.1)
    writer.start()
    sink = StoreSink(writer, config.mqtt.prefix)
    pipeline = build_camera_pipeline(
        camera, config, sink, SnapshotWriter(state_dir / "snapshots", 85), None, reviews=sink,
    )
    # Two people walk in from the left across the line into the zone, stand there together
    # (intrusion, loitering, crowd), and leave.
    for step in range(40):
        t = step * 0.2
        xs = [min(5 + 8 * step, 60), min(8 * step, 75)]
        pipeline.process(make_detections(t, *(
            make_detection((x, 40, x + 12, 95), label=camera.labels[0]) for x in xs
        ), camera=camera.name))
    pipeline.expire(30.0)
    assert pipeline.close(timeout_s=2.0)
    writer.stop(10.0)
    with Session(engine) as session:
        kinds = set(session.scalars(select(EventRow.kind)))
        topics = list(session.scalars(select(OutboxRow.topic)))
        longest_snapshot = session.scalar(select(func.max(func.length(EventRow.snapshot))))
    engine.dispose()
    assert {"presence", "intrusion", "loitering", "crowd", "line_crossing"} <= kinds
    assert topics and max(map(len, topics)) > 200
    assert longest_snapshot is not None and longest_snapshot > 600


def test_a_state_dir_too_long_for_the_snapshot_column_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"daemon.state_dir: .* at most"):
        parse_config(longest_config(tmp_path / ("s" * 1000)))
