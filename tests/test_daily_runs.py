"""Daily retraining through the real LocalDagRunner: one span of data a day under data/span-{SPAN}/,
each ingested once, a window of the newest spans for Transform and the Trainer.

The runs, in order, share one pipeline root and metadata store (as a scheduled pipeline does):
1. days 1 and 2 on disk, nothing ingested: day 1 is ingested first (ExampleGen with a static range,
   and its statistics), then the run ingests day 2, checks its drift from day 1 and trains on both;
2. day 3 arrives, through the loop a served model closes: its rows are sent to day 1's pushed model
   (``embedpipe serve`` logging every call, each example carrying a ``request_id``), the clicks
   arrive later in a labels file, and ``embedpipe data from-logs`` joins the two into span 3 (every
   row written, nothing unaccounted for). The run ingests day 3 only, and the window (2 spans) moves to days 2-3; Transform
   analyses day 3 alone and reads day 2 from its analyzer cache (a spy on TFT's own choice,
   ``get_analysis_dataset_keys``), and its vocabularies equal a cold Transform's over days 2-3;
   The Trainer warm-starts from day 1's pushed model (``training.warm_start``): the vocabularies grew
   and were reordered (new items, popularity shifts), the categories' stayed the same;
3. nothing new: ExampleGen is cached, nothing is ingested, the window stays, and the Trainer with
   it (its base model is still the one trained on another window);
4. ``interests``' embedding_dim changes: the Trainer cannot warm-start and
   trains from scratch, saying which feature and why;
5. day 4 arrives broken (``interests`` collapsed onto one value, as a broken upstream job leaves it):
   the DriftGate stops the run before Transform, naming the feature, the distance and the threshold,
   with the default threshold (nothing set in the config).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import tensorflow_transform.beam as tft_beam
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from embedconfig.config import config_as_dict, parse_config
from pipeline.datasets.synthetic import write_synthetic_spans
from pipeline.pipeline_factory import EXAMPLE_GEN
from tests.helpers.configs import synthetic_raw_config

pytestmark = pytest.mark.e2e

ROWS_PER_DAY = 1500


def _config(work: Path):
    raw = synthetic_raw_config(work, work / "data" / "span-{SPAN}", name="daily")
    raw["data"]["window"] = {"spans": 2}
    raw["data"]["key"] = "request_id"  # day 3 comes from the request logs
    raw["training"].update(epochs=2, warm_start=True)
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
    record: dict = {"config": config, "work": work}
    analysed: list[tuple[int, int]] = []  # per Transform run: (datasets analysed, datasets in the window)
    get_keys = tft_beam.analysis_graph_builder.get_analysis_dataset_keys

    def spy(*args, **kwargs):
        keys = get_keys(*args, **kwargs)
        analysed.append((len(keys), len(args[2])))
        return keys

    with pytest.MonkeyPatch.context() as patch:  # wraps TFT's function, it still decides
        patch.setattr(tft_beam.analysis_graph_builder, "get_analysis_dataset_keys", spy)
        for day in (1, 2, 3):
            if day == 2:
                record["from_logs"] = _span_from_request_logs(config, span_3, data / "span-3", work / "logs")
            out = io.StringIO()
            record[day] = run_locally(config, out=out)
            record[f"out{day}"] = out.getvalue()
            record[f"analysed{day}"] = analysed[-1] if analysed else None
            analysed.clear()
    wider = parse_config({**config_as_dict(config), "features": [
        {**config_as_dict(f), **({"embedding_dim": 16} if f.name == "interests" else {})} for f in config.features]})
    record["reshaped"] = run_locally(wider, out=io.StringIO())
    (broken_day / "span-4").rename(data / "span-4")
    with pytest.raises(Exception) as stopped:
        run_locally(config, out=io.StringIO())
    record["broken"] = stopped.value
    return record


def _span_from_request_logs(config, rows_dir: Path, span_dir: Path, logs: Path):
    """Send ``rows_dir``'s rows (label left out, a request_id added) to the pushed model with every
    call logged, write their labels as they would arrive later, and join the two into ``span_dir``."""
    from pipeline.datasets.request_logs import from_logs
    from records.raw_records import column_specs, record_to_example
    from serving.client import ModelClient
    from serving.server import build_parser, start_server

    rows = [json.loads(line) for path in sorted(rows_dir.glob("*.jsonl")) for line in path.read_text().splitlines() if line]
    labels = [{"request_id": f"day3-{i}", "clicked": row.pop("clicked")} for i, row in enumerate(rows)]
    examples = [record_to_example({**row, "request_id": f"day3-{i}"}, column_specs(config), "day 3") for i, row in enumerate(rows)]
    running = start_server(build_parser().parse_args([
        "--port=0", "--file_system_poll_wait_seconds=0", f"--model_name={config.push.model_name}",
        f"--model_base_path={config.push.model_directory}", f"--request_log_file_prefix={logs / 'requests'}"]))
    try:
        client = ModelClient(f"localhost:{running.port}", config.push.model_name)
        for start in range(0, len(examples), 100):  # Predict and Classify, as clients send them
            batch = [e.SerializeToString() for e in examples[start:start + 100]]
            (client.predict_serialized if start % 200 == 0 else client.classify_serialized)(batch)
    finally:
        running.stop(grace=2)
    labels_file = logs / "labels.jsonl"
    labels_file.write_text("".join(json.dumps(label) + "\n" for label in labels))
    counts = from_logs(config, str(logs / "requests"), str(labels_file), str(span_dir))
    return counts, len(rows)


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


def test_the_new_day_came_from_the_served_models_request_logs_joined_with_labels(days) -> None:
    counts, rows = days["from_logs"]
    assert (counts.logged_examples, counts.written, counts.labels) == (rows, rows, rows), counts.render()
    assert counts.without_key == counts.without_label == counts.duplicate_keys == counts.labels_without_request == 0
    assert days[2].ingested_spans == [3]


def test_monitor_compares_the_logged_day_with_the_answering_versions_training_data_from_ml_metadata(days, tmp_path: Path) -> None:
    from pipeline.monitor import run_monitor

    config = days["config"]
    [version] = run_monitor(config, str(days["work"] / "logs" / "requests"), str(tmp_path))
    assert str(version.version) == os.path.basename(days[1].pushed_path), (version.version, days[1].pushed_path)
    assert "2 Examples artifact(s), spans 1-2" in version.baseline, version.baseline
    assert version.examples == days["from_logs"][1] and not version.skewed, [(f.feature, f.distance) for f in version.features]
    rates = {f.feature: (f.oov_served, f.oov_trained) for f in version.features}
    assert all(0 <= served <= 1 and 0 <= trained <= 1 for served, trained in rates.values()), rates
    assert rates["history"][0] > rates["history"][1], rates  # day 3 brings items days 1-2 never had


def test_a_new_day_is_ingested_alone_and_the_window_moves(days) -> None:
    second = days[2]
    assert "ingesting span" not in days["out2"]
    assert second.ingested_spans == [3] and second.trained_spans == [2, 3], second.render()


def test_a_run_with_nothing_new_ingests_nothing_and_keeps_the_window(days) -> None:
    third = days[3]
    assert third.ingested_spans == [] and third.trained_spans == [2, 3], third.render()
    assert {"ExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(third.cached_components), third.render()
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


def test_transform_analyses_only_the_new_span_and_reads_the_rest_from_its_cache(days) -> None:
    assert days["analysed1"] == (2, 2), "first run: no cache, days 1 and 2 analysed"
    assert days["analysed2"] == (1, 2), "day 3 analysed, day 2 read from the analyzer cache"
    assert days["analysed3"] is None, "nothing new: Transform cached, nothing analysed"


def test_vocabularies_from_the_cache_equal_a_cold_transform_over_the_same_window(days, tmp_path: Path) -> None:
    from tfx.types import standard_artifacts

    from tests.helpers.executors import artifact, run_transform, schema_artifact

    config = days["config"]
    store_config = metadata_store_pb2.ConnectionConfig()
    store_config.sqlite.filename_uri = config.pipeline.metadata_path
    store = metadata_store.MetadataStore(store_config)
    examples = {a.custom_properties["span"].int_value: a.uri
                for a in store.get_artifacts_by_context(store.get_context_by_type_and_name("node", f"{config.pipeline.name}.{EXAMPLE_GEN}").id)
                if "span" in a.custom_properties}
    window = [artifact(standard_artifacts.Examples, Path(examples[span]), ["train", "validation", "eval"]) for span in (2, 3)]
    cold, _ = run_transform(config, window, schema_artifact(config, tmp_path / "schema"), tmp_path)
    transform = store.get_context_by_type_and_name("node", f"{config.pipeline.name}.Transform")
    cached_graph = max((a for a in store.get_artifacts_by_context(transform.id) if a.uri.endswith(tuple("0123456789"))
                        and "/transform_graph/" in a.uri), key=lambda a: a.id).uri
    cold_vocabularies = sorted((Path(cold.uri) / "transform_fn" / "assets").iterdir())
    assert [p.name for p in cold_vocabularies] == ["vocab_history", "vocab_interests", "vocab_target_categories", "vocab_user"]
    for vocabulary in cold_vocabularies:
        assert (Path(cached_graph) / "transform_fn" / "assets" / vocabulary.name).read_bytes() == vocabulary.read_bytes(), vocabulary.name


def _training_record(summary) -> dict:
    return json.loads((Path(summary.model_path) / "assets.extra" / "embedpipe" / "training.json").read_text())


def _vocabularies(model_path: str) -> dict[str, list[bytes]]:
    directory = Path(model_path) / "assets.extra" / "embedpipe" / "vocabularies"
    return {p.name: p.read_bytes().splitlines() for p in directory.iterdir()}


def test_the_first_model_trains_from_scratch_as_there_is_no_blessed_model(days) -> None:
    assert days[1].warm_start == "no, trained from scratch: no blessed model yet", days[1].render()


def test_the_next_day_warm_starts_from_the_pushed_model_moving_rows_by_token(days) -> None:
    first, second = days[1], days[2]
    record = _training_record(second)["warm_start"]
    assert record["warm"] and record["base_model"] == first.model_path, record
    version = first.pushed_path.rstrip("/").rsplit("/", 1)[-1]
    assert second.warm_start.startswith(f"from the model pushed as version {version} ({first.model_path}); "
                                        "embedding rows by token: "), second.render()
    assert f"warm start: {second.warm_start}" in second.render()
    before, after = _vocabularies(first.model_path), _vocabularies(second.model_path)
    grown = same = 0
    for owner, table in record["tables"].items():
        kept = set(before[owner]) & set(after[owner])
        assert (table["kept"], table["new"], table["dropped"]) == (
            len(kept), len(set(after[owner]) - kept), len(set(before[owner]) - kept)), owner
        grown += table["new"] > 0 and before[owner] != [t for t in after[owner] if t in kept]  # grown and reordered
        same += set(before[owner]) == set(after[owner]) and table["kept"] == len(after[owner])  # same vocabulary
    assert grown and same, record["tables"]
    assert "hidden_0" in record["layers_copied"] and "probability" in record["layers_copied"]


def test_a_changed_embedding_dim_trains_from_scratch_naming_the_feature(days) -> None:
    reshaped = days["reshaped"]
    assert "Trainer" not in reshaped.cached_components, reshaped.render()
    assert reshaped.warm_start == "no, trained from scratch: embedding_dim of 'interests' changed from 8 to 16", reshaped.render()
    assert _training_record(reshaped)["warm_start"]["from_scratch"] == ["embedding_dim of 'interests' changed from 8 to 16"]
