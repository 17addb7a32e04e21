"""components/drift_gate.py's measurement on real TFDV statistics of `embedpipe data synthetic --spans` days:
a normal day passes the default threshold; each feature, emptied or collapsed onto one value, does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from components.drift_gate import EMPTIED, measure_drift
from embedconfig.config import DriftConfig, parse_config
from pipeline.datasets.synthetic import write_synthetic_spans
from records.raw_records import ReaderSettings, file_pieces, read_piece

ROWS = 800


def _statistics(jsonl: str, settings: ReaderSettings, out: Path):
    """TFDV statistics of a day's file, through the project's record conversion (as ExampleGen writes them)."""
    records = out / (Path(jsonl).parent.name + ".tfrecord")
    with tf.io.TFRecordWriter(str(records)) as writer:
        for piece in file_pieces(jsonl, "jsonl"):
            for example in read_piece(piece, "jsonl", settings.specs, settings.list_delimiter):
                writer.write(example.SerializeToString())
    return tfdv.generate_statistics_from_tfrecord(str(records))


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from tests.helpers.configs import synthetic_raw_config

    work = tmp_path_factory.mktemp("drift")
    config = parse_config(synthetic_raw_config(work, work / "data"))
    settings = ReaderSettings.of(config)
    normal = write_synthetic_spans(str(work / "normal"), ROWS, spans=2)
    found = {"schema": tfdv.load_schema_text(config.schema), "day1": _statistics(normal[0], settings, work),
             "day2": _statistics(normal[1], settings, work)}
    for feature, how in (("interests", "empty"), ("history", "empty"), ("target", "empty"), ("history", "collapse")):
        broken = write_synthetic_spans(str(work / f"{feature}-{how}"), ROWS, spans=2, broken=(2, feature, how))
        found[(feature, how)] = _statistics(broken[1], settings, work)
    return found


def test_a_normal_day_is_within_the_default_threshold(days) -> None:
    measured, _ = measure_drift(days["day2"], days["day1"], days["schema"], DriftConfig())
    assert measured and not [d.describe() for d in measured if d.over]
    assert {d.feature for d in measured} >= {"user", "interests", "history", "target", "target_categories"}


@pytest.mark.parametrize("feature, how", [("interests", "empty"), ("history", "empty"), ("target", "empty"), ("history", "collapse")])
def test_a_broken_feature_is_past_the_default_threshold(days, feature: str, how: str) -> None:
    """TFDV's comparators alone measure nothing (history: no histogram left; target: a dropped column)
    or 0.10 (an emptied sequence) for an emptied feature: the gate counts it as the full distance."""
    measured, _ = measure_drift(days[(feature, how)], days["day1"], days["schema"], DriftConfig())
    over = {d.feature: d for d in measured if d.over}
    assert feature in over, [d.describe() for d in measured]
    if how == "empty":
        assert over[feature].measure == EMPTIED and "no values left" in over[feature].describe()
