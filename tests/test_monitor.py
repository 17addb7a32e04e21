"""`embedpipe monitor` on requests a real server logged (serving/request_log.py) for a real model.

The small model (tests/helpers/small_model.py) is served with logging on; clients send examples
drawn from its training data, then the same examples with one feature shifted. Monitor passes the
first and flags only the shifted feature in the second (exit 4 from the CLI); the OOV rate is
checked on a hand-counted case. The lineage path (a pushed version found in ML Metadata) runs in
tests/test_pipeline_e2e.py, on a pipeline's own push.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from embedconfig.config import TRAIN, config_as_yaml
from models.warm_start import MODEL_INFO_DIR, VOCABULARIES_DIR, read_vocabulary
from pipeline.datasets.request_logs import feature_values
from pipeline.monitor import run_monitor
from serving.server import build_parser, start_server

pytestmark = pytest.mark.serving

MODEL = "synthetic"
REQUESTS = 1000  # the yardstick: a thousand requests drawn from the training data must pass


def _train_examples(small_model_build) -> list[bytes]:
    files = sorted(glob.glob(os.path.join(small_model_build.examples.uri, f"Split-{TRAIN}", "*")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _serve_and_log(small_model: str, work: Path, batches: list[list[bytes]]) -> str:
    """Serve the small model with every call logged, send ``batches`` as Predict calls, stop; the log prefix."""
    base = work / "models" / MODEL
    base.mkdir(parents=True)
    shutil.copytree(small_model, base / "1")
    prefix = str(work / "logs" / "requests")
    running = start_server(build_parser().parse_args([
        "--port=0", "--file_system_poll_wait_seconds=0", f"--model_name={MODEL}", f"--model_base_path={base}",
        f"--request_log_file_prefix={prefix}"]))
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            stub.Predict(request, timeout=30)
    finally:
        running.stop(grace=2)
    return prefix


@pytest.fixture(scope="module")
def training_statistics(small_model_build, tmp_path_factory) -> str:
    """TFDV statistics of the small model's train split, as StatisticsGen writes them."""
    config = small_model_build.config
    path = str(tmp_path_factory.mktemp("baseline") / "FeatureStats.pb")
    statistics = tfdv.generate_statistics_from_tfrecord(
        os.path.join(small_model_build.examples.uri, f"Split-{TRAIN}", "*"),
        stats_options=tfdv.StatsOptions(schema=tfdv.load_schema_text(config.schema)))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(statistics.SerializeToString())
    return path


def _collapsed(serialized: bytes, feature: str, value: bytes) -> bytes:
    example = tf.train.Example.FromString(serialized)
    del example.features.feature[feature].bytes_list.value[:]
    example.features.feature[feature].bytes_list.value.append(value)
    return example.SerializeToString()


def _batches(examples: list[bytes], size: int = 50) -> list[list[bytes]]:
    return [examples[i:i + size] for i in range(0, len(examples), size)]


def test_traffic_drawn_from_the_training_data_passes_and_a_collapsed_feature_is_skew(
        small_model_build, small_model: str, training_statistics: str, tmp_path: Path) -> None:
    config = small_model_build.config
    train = _train_examples(small_model_build)
    rng = np.random.default_rng(0)
    drawn = [train[i] for i in rng.choice(len(train), REQUESTS, replace=True)]
    prefix = _serve_and_log(small_model, tmp_path / "same", _batches(drawn))
    [same] = run_monitor(config, prefix, str(tmp_path / "out-same"), training_statistics, small_model)
    assert (same.version, same.calls, same.examples) == (1, REQUESTS // 50, REQUESTS)
    assert not same.skewed, [(f.feature, f.distance) for f in same.features]
    assert {f.feature for f in same.features if f.measure != "-"} == {f.name for f in config.features}

    collapsed = [_collapsed(e, "interests", b"topic_1") for e in drawn]
    prefix = _serve_and_log(small_model, tmp_path / "shifted", _batches(collapsed))
    output = tmp_path / "out-shifted"
    [shifted] = run_monitor(config, prefix, str(output), training_statistics, small_model)
    assert [f.feature for f in shifted.skewed] == ["interests"], [(f.feature, f.distance) for f in shifted.features]
    for name in ("served_statistics.pb", "SchemaDiff.pb", "skew.json"):
        assert (output / "version-1" / name).exists(), name

    # the CLI: one table row per feature, exit 4 on skew
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_as_yaml(config))
    embedpipe = str(Path(sys.executable).with_name("embedpipe"))
    out = subprocess.run([embedpipe, "monitor", "--config", str(config_file), "--logs", prefix, "--baseline-statistics",
                          training_statistics, "--model-dir", small_model, "--output", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 4, out.stdout[-3000:] + out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.strip().split(" ")[0] in {f.name for f in config.features}]
    assert {r[0] for r in rows} == {f.name for f in config.features} and [r[0] for r in rows if "SKEW" in r] == ["interests"], out.stdout


def test_the_oov_rate_of_served_tokens_matches_a_hand_count(small_model_build, small_model: str, training_statistics: str,
                                                              tmp_path: Path) -> None:
    config = small_model_build.config
    vocabulary = read_vocabulary(os.path.join(small_model, MODEL_INFO_DIR, VOCABULARIES_DIR, "interests"))
    known = vocabulary[:3]
    examples = []
    for tokens in ([known[0], b"never-seen-1"], [known[1], known[2], b"never-seen-2", b"never-seen-3"], [], [known[0]]):
        example = tf.train.Example()
        example.features.feature["interests"].bytes_list.value.extend(tokens)
        example.features.feature["user"].bytes_list.value.append(b"u1")
        example.features.feature["target"].int64_list.value.append(13)
        examples.append(example.SerializeToString())
    prefix = _serve_and_log(small_model, tmp_path, [examples])
    [result] = run_monitor(config, prefix, str(tmp_path / "out"), training_statistics, small_model)
    interests = next(f for f in result.features if f.feature == "interests")
    assert interests.oov_served == pytest.approx(3 / 7)  # 7 tokens sent, 3 not in the vocabulary
    assert next(f for f in result.features if f.feature == "history").oov_served is None  # no history sent


def test_from_logs_accounts_for_every_logged_example_and_every_label(small_model_build, small_model: str, tmp_path: Path) -> None:
    from pipeline.datasets.request_logs import OUTPUT_FILE, from_logs, read_labels

    config = small_model_build.config.model_copy(update={"data": small_model_build.config.data.model_copy(update={"key": "request_id"})})
    examples = []
    for key in ("r1", "r2", "r2", None, "r3"):  # r2 retried, one client sent no key, r3's label never came
        example = tf.train.Example()
        example.features.feature["interests"].bytes_list.value.extend([b"topic_1", b"topic_2"])
        example.features.feature["user"].bytes_list.value.append(b"u1")
        example.features.feature["target"].int64_list.value.append(13)
        if key:
            example.features.feature["request_id"].bytes_list.value.append(key.encode())
        examples.append(example.SerializeToString())
    prefix = _serve_and_log(small_model, tmp_path, [examples[:3], examples[3:]])
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"request_id": "r1", "clicked": 1}\n{"request_id": "r2", "clicked": 0}\n{"request_id": "r9", "clicked": 1}\n')
    counts = from_logs(config, prefix, str(labels), str(tmp_path / "span-9"))
    assert (counts.logged_examples, counts.written, counts.duplicate_keys, counts.without_key, counts.without_label,
            counts.labels, counts.labels_without_request) == (5, 2, 1, 1, 1, 3, 1), counts.render()
    rows = [json.loads(line) for line in (tmp_path / "span-9" / OUTPUT_FILE).read_text().splitlines()]
    assert rows[0] == {"user": "u1", "interests": ["topic_1", "topic_2"], "target": 13, "clicked": 1}, rows[0]  # no history sent
    assert "request_id" not in rows[1] and rows[1]["clicked"] == 0
    labels.write_text('{"request_id": "r1", "clicked": 1}\n{"request_id": "r2"}\n')
    with pytest.raises(ValueError, match=r"labels.jsonl:2: needs the key 'request_id' \(data.key\) and the label 'clicked'"):
        read_labels(str(labels), "request_id", "clicked")


def test_without_metadata_the_models_training_record_gives_the_baseline_and_the_trained_oov_rate(
        small_model_build, small_model: str, tmp_path: Path) -> None:
    config = small_model_build.config  # its metadata store was never written: the small model ran no pipeline
    assert not os.path.exists(config.pipeline.metadata_path)
    train = _train_examples(small_model_build)
    prefix = _serve_and_log(small_model, tmp_path, _batches(train[:200]))
    [result] = run_monitor(config, prefix, str(tmp_path / "out"), model_dir=small_model)
    assert "training record" in result.baseline and not result.skewed, result.baseline
    # the trained OOV rate, counted here by hand over the same files: 0 for this model, whose vocabularies
    # (no frequency threshold, top_k above the items) hold every train token; both sides are counted by
    # the same OovCounts, which the hand-counted served case above checks on a non-zero rate
    for name in ("interests", "history"):
        owner = config.feature(name).vocabulary_owner
        vocabulary = set(read_vocabulary(os.path.join(small_model, MODEL_INFO_DIR, VOCABULARIES_DIR, owner)))
        tokens = [str(v).encode() if isinstance(v, int) else v for e in train
                  for v in feature_values(tf.train.Example.FromString(e), name) or []]
        expected = sum(t not in vocabulary for t in tokens) / len(tokens)
        assert next(f for f in result.features if f.feature == name).oov_trained == pytest.approx(expected), name


def test_no_complete_log_files_is_an_error_naming_the_prefix(small_model_build, tmp_path: Path) -> None:
    from pipeline.monitor import MonitorError

    (tmp_path / "requests-20261208T000000Z-host-1-00001.tfrecord.tmp").write_bytes(b"")  # still being written
    with pytest.raises(MonitorError, match=rf"--logs {tmp_path}/requests: no complete request-log files"):
        run_monitor(small_model_build.config, str(tmp_path / "requests"), str(tmp_path / "out"))
