"""Daily retraining through the real LocalDagRunner: one span of data a day under data/span-{SPAN}/,
each ingested once, a window of the newest spans for Transform and the Trainer.

The runs, in order, share one pipeline root and metadata store (as a scheduled pipeline does):
1. days 1 and 2 on disk, nothing ingested: day 1 is ingested first (ExampleGen with a static range,
   and its statistics), then the run ingests day 2, checks its drift from day 1 and trains on both;
2. day 3 arrives: the run ingests day 3 only, and the window (2 spans) moves to days 2-3;
3. nothing new: ExampleGen is cached, nothing is ingested, the window stays;
4. day 4 arrives broken (``interests`` collapsed onto one value, as a broken upstream job leaves it):
   the DriftGate stops the run before Transform, naming the feature, the distance and the threshold,
   with the default threshold (nothing set in the config).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from embedconfig.config import parse_config
from pipeline.datasets.synthetic import write_synthetic_spans
from pipeline.pipeline_factory import EXAMPLE_GEN
from tests.helpers.configs import synthetic_raw_config

pytestmark = pytest.mark.e2e

ROWS_PER_DAY = 1500


def _config(work: Path):
    raw = synthetic_raw_config(work, work / "data" / "span-{SPAN}", name="daily")
    raw["data"]["window"] = {"spans": 2}
    raw["training"].update(epochs=2)
    raw["evaluation"]["value_thresholds"] = {"AUC": {"lower_bound": 0.55}}
    raw["evaluation"]["no_regression"] = {"AUC": 0.2}
    return parse_config(raw)


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The three runs' summaries and printed output."""
    from pipeline.local_runner import run_locally

    work = tmp_path_factory.mktemp("daily")
    data = work / "data"
    write_synthetic_spans(str(data), ROWS_PER_DAY, spans=3)
    broken_day = work / "broken"
    write_synthetic_spans(str(broken_day), ROWS_PER_DAY, spans=4, broken=(4, "interests", "collapse"))
    span_3 = work / "later" / "span-3"
    span_3.parent.mkdir()
    (data / "span-3").rename(span_3)  # day 3 has not arrived yet
    config = _config(work)
    record: dict = {"config": config}
    for day in (1, 2, 3):
        if day == 2:
            span_3.rename(data / "span-3")
        out = io.StringIO()
        record[day] = run_locally(config, out=out)
        record[f"out{day}"] = out.getvalue()
    (broken_day / "span-4").rename(data / "span-4")
    with pytest.raises(Exception) as stopped:
        run_locally(config, out=io.StringIO())
    record["broken"] = stopped.value
    return record


def _examples_by_span(config) -> dict[int, int]:
    """How many Examples artifacts ExampleGen made per span, read from ML Metadata."""
    store_config = metadata_store_pb2.ConnectionConfig()
    store_config.sqlite.filename_uri = config.pipeline.metadata_path
    store = metadata_store.MetadataStore(store_config)
    context = store.get_context_by_type_and_name("node", f"{config.pipeline.name}.{EXAMPLE_GEN}")
    counts: dict[int, int] = {}
    for artifact in store.get_artifacts_by_context(context.id):
        if "span" in artifact.custom_properties:
            span = artifact.custom_properties["span"].int_value
            counts[span] = counts.get(span, 0) + 1
    return counts


def test_a_backlog_is_ingested_oldest_first_and_the_run_trains_on_the_window(days) -> None:
    first = days[1]
    assert "embedpipe: ingesting span 1 first (on disk, not ingested yet)" in days["out1"]
    assert first.ingested_spans == [1, 2] and first.trained_spans == [1, 2], first.render()
    assert "spans: ingested 1, 2; trained on 1, 2" in first.render()
    assert first.pushed, first.render()


def test_a_new_day_is_ingested_alone_and_the_window_moves(days) -> None:
    second = days[2]
    assert "ingesting span" not in days["out2"]
    assert second.ingested_spans == [3] and second.trained_spans == [2, 3], second.render()


def test_a_run_with_nothing_new_ingests_nothing_and_keeps_the_window(days) -> None:
    third = days[3]
    assert third.ingested_spans == [] and third.trained_spans == [2, 3], third.render()
    assert "ExampleGen" in third.cached_components
    assert "spans: ingested none new (the newest span was ingested before); trained on 2, 3" in third.render()


def test_every_span_was_ingested_once(days) -> None:
    assert _examples_by_span(days["config"]) == {1: 1, 2: 1, 3: 1, 4: 1}



def test_a_normal_day_passes_the_drift_gate_and_the_summary_says_so(days) -> None:
    assert days[1].drift == "span 2 against span 1: within every threshold", days[1].render()
    assert days[2].drift == "span 3 against span 2: within every threshold", days[2].render()


def test_a_broken_day_is_stopped_by_drift_naming_the_feature(days) -> None:
    message = str(days["broken"])
    assert "span 4 drifted from span 3 (train split)" in message, message
    assert "feature 'interests': L-infinity distance" in message and "> threshold 0.3" in message, message
