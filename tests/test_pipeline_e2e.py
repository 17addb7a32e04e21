"""End to end through the real LocalDagRunner, Beam DirectRunner and TFX components, on buckets.

``embedpipe run`` as a user runs it (a subprocess; credentials and endpoint from the standard AWS
variables only), with the raw data, the pipeline root and the push base in three buckets of a
local S3-API server (moto's, the stand-in for S3 or MinIO). Only the SQLite metadata store and
the logs may appear on local disk. Three runs of the built-in example:

1. cold: blessed, canaried and pushed into the bucket; the Evaluator's split is one the Trainer
   never read, and slices are reported. ``embedpipe serve`` then serves the pushed model straight
   from the bucket and answers like the model loaded in this process, on every signature;
2. a retrain (another seed): upstream cached, compared with the blessed baseline, pushed, and the
   running server picks the new version up;
3. the retrain's config again: cached through the Pusher.

Each run's summary is read from the metadata store by pipeline/run_summary.py, as the CLI prints it.
Two runs over bad data, which the schema gate stops, use local disk (the other paths that run on
local disk: tests/test_new_dataset.py (on the portable runner), the reliability tests).
(These three runs replace three local runs here and two bucket runs in tests/test_object_storage.py,
which checked much the same things twice.)
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from embedconfig.config import parse_config
from pipeline.datasets.synthetic import write_synthetic
from pipeline.local_runner import run_locally
from pipeline.run_summary import summarize_run
from tests.helpers.configs import REPO, synthetic_raw_config
from tests.helpers.s3_server import CREDENTIALS, environment_without_buckets
from tests.helpers.synthetic_requests import RAW_INPUTS, SERIALIZED

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 900  # seconds; a cold run takes ~100 s on 2 cores
DATA, ROOT, MODELS = "embedpipe-data", "embedpipe-root", "embedpipe-models"
MODEL_NAME = "synthetic"
ROWS = 6000


def _run(config: Path, work: Path, env: dict[str, str], log_name: str) -> str:
    with open(work / log_name, "w") as log:
        code = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", str(config)], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT).returncode
    text = (work / log_name).read_text()
    assert code == 0, text[-4000:]
    return text


def _local_files(work: Path) -> set[str]:
    return {p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()}


def _start_server(env: dict[str, str], work: Path) -> tuple[subprocess.Popen, int]:
    import portpicker

    port = portpicker.pick_unused_port()
    command = [sys.executable, "-m", "pipeline.cli", "serve", f"--port={port}", f"--model_name={MODEL_NAME}",
               f"--model_base_path=s3://{MODELS}/serving/{MODEL_NAME}", "--file_system_poll_wait_seconds=1"]
    with open(work / "serve.log", "w") as log:
        return subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT), port


def _wait_for_version(client, process: subprocess.Popen, version: int, timeout: float = 180) -> dict[int, str]:
    import grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            versions = client.versions()
            if versions.get(version) == "AVAILABLE":
                return versions
        except grpc.RpcError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"version {version} not AVAILABLE within {timeout:.0f} s")


def _in_process_scores(model_dir: str) -> np.ndarray:
    model = tf.saved_model.load(model_dir)  # read from the bucket by this process's tf.io.gfile
    return model.signatures["serving_default"](examples=tf.constant(SERIALIZED))["probability"].numpy().reshape(-1)


def _served_signatures(client) -> dict:
    """What the server says of the pushed model's other signatures: their names (GetModelMetadata),
    Classify on ``classify``, and Predict on ``predict_raw`` with raw tensors, for the rows of
    SERIALIZED (tests/helpers/synthetic_requests.py)."""
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL_NAME
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    client.prediction.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(signature_map)

    raw = predict_pb2.PredictRequest()
    raw.model_spec.name, raw.model_spec.signature_name = MODEL_NAME, "predict_raw"
    for key, value in RAW_INPUTS.items():
        raw.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    response = client.prediction.Predict(raw, timeout=30)
    return {"names": set(signature_map.signature_def),
            "classify": np.array(client.classify_serialized(SERIALIZED)),
            "predict_raw": tf.make_ndarray(response.outputs["probability"]).reshape(-1)}


def _version(pushed_path: str) -> int:
    return int(pushed_path.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def runs(s3, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The three runs on the buckets, with a server on the push base after the first."""
    from serving.client import ModelClient

    client = s3.client()
    for bucket in (DATA, ROOT, MODELS):
        client.create_bucket(Bucket=bucket)
    data_path = write_synthetic(f"s3://{DATA}/raw", rows=ROWS, seed=0)  # the data tool writes to a bucket too
    assert data_path == f"s3://{DATA}/raw/examples.jsonl" and s3.keys(DATA) == ["raw/examples.jsonl"]

    work = tmp_path_factory.mktemp("bucket-run")  # cwd, config, metadata, logs and TMPDIR of every process
    raw = synthetic_raw_config(work, work, name="embedpipe-e2e")
    raw["pipeline"]["root"] = f"s3://{ROOT}/pipelines/synthetic"
    raw["data"]["path"] = f"s3://{DATA}/raw/"
    raw["push"]["base_directory"] = f"s3://{MODELS}/serving"
    raw["evaluation"]["slices"] = [["target_categories"]]
    raw["evaluation"]["no_regression"] = {"AUC": 0.1}  # the retrain is compared, and pushed unless far worse
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    (work / "tmp").mkdir()
    env = {**environment_without_buckets(), **s3.env(), "TMPDIR": str(work / "tmp"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    summary = lambda: summarize_run(raw["pipeline"]["name"], raw["pipeline"]["root"], str(work / "metadata.sqlite"))  # noqa: E731

    record: dict = {"work": work, "config": parse_config(raw), "config_text": config.read_text()}
    record["progress"] = _run(config, work, env, "run1.log")
    record["first"] = summary()
    record["first_local"] = _local_files(work)

    server, port = _start_server(env, work)
    model_client = ModelClient(f"127.0.0.1:{port}", MODEL_NAME)
    try:
        _wait_for_version(model_client, server, _version(record["first"].pushed_path))
        record["first_served"] = np.array(model_client.predict_serialized(SERIALIZED))
        record["first_expected"] = _in_process_scores(record["first"].pushed_path)
        record["first_signatures"] = _served_signatures(model_client)

        retrain = dict(raw, training={**raw["training"], "seed": 1})  # the Trainer runs again, upstream is cached
        config2 = work / "config2.yaml"
        config2.write_text(yaml.safe_dump(retrain))
        record["second_log"] = _run(config2, work, env, "run2.log")
        record["second"] = summary()
        assert record["second"].pushed, record["second"].render()
        record["versions_after_second"] = _wait_for_version(model_client, server, _version(record["second"].pushed_path))
        record["second_served"] = np.array(model_client.predict_serialized(SERIALIZED))
        record["second_expected"] = _in_process_scores(record["second"].pushed_path)
        _run(config2, work, env, "run3.log")  # nothing changed
        record["third"] = summary()
    finally:
        model_client.close()
        server.send_signal(signal.SIGTERM)
        try:
            record["server_exit"] = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            record["server_exit"] = "killed after 60 s"
    record["local"] = _local_files(work)
    record["keys"] = {bucket: s3.keys(bucket) for bucket in (DATA, ROOT, MODELS)}
    return record


def _read_json(path: str) -> dict:
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def test_first_run_is_blessed_canaried_and_pushed_into_the_bucket(runs) -> None:
    config, first, progress = runs["config"], runs["first"], runs["progress"]
    assert first.blessed is True, first.render()
    assert first.metrics["auc"] >= 0.65 and first.metrics["example_count"] > 0
    assert first.pushed and first.pushed_path.startswith(f"s3://{MODELS}/serving/{MODEL_NAME}/")
    assert first.pushed_path.startswith(config.push.model_directory)
    version = first.pushed_path.rsplit("/", 1)[1]
    assert version.isdigit(), "TF Serving layout: <base>/<model>/<integer version>/"
    pushed = {k for k in runs["keys"][MODELS] if k.startswith(f"serving/{MODEL_NAME}/{version}/")}
    info = f"serving/{MODEL_NAME}/{version}/assets.extra/embedpipe"
    for name in ("saved_model.pb", "assets.extra/tf_serving_warmup_requests",
                 *(f"assets.extra/embedpipe/{n}" for n in ("model_summary.txt", "config.json", "training.json"))):
        assert f"serving/{MODEL_NAME}/{version}/{name}" in pushed, name
    training = _read_json(f"s3://{MODELS}/{info}/training.json")
    assert 1 <= training["epochs_run"] <= config.training.epochs and training["train_seconds"] > 0
    assert len(training["history"]["val_auc"]) == training["epochs_run"] and training["steps"] > 0
    assert tf.io.gfile.stat(f"{first.pushed_path}/assets.extra/tf_serving_warmup_requests").length > 0, \
        "the pushed model carries the canary's warmup requests"
    assert "[1/12] ExampleGen ..." in progress and "ServingCanary done" in progress and "Pusher done" in progress
    # the Beam mode left to auto, settled from the size of the data in the bucket (pipeline/beam_mode.py)
    assert re.search(r"embedpipe: Beam --runner=DirectRunner --direct_running_mode=in_memory --direct_num_workers=1 "
                     r"\(auto: in_memory \(\d+ MB of input, < 128 MB\)\)", progress), progress[:3000]
    assert "blessed: yes" in progress and "serving canary: passed" in progress and "pushed: " in progress
    assert first.infra_blessed is True
    artifacts = runs["keys"][ROOT]
    for component in ("ExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "ServingCanary", "Pusher"):
        assert any(k.startswith(f"pipelines/synthetic/{component}/") for k in artifacts), component
    assert not any("/canary_base/" in k for k in artifacts), "the canary's served copy is removed"


def _split_size(s3, split: str) -> int:
    """Examples in ExampleGen's ``split`` (one ExampleGen execution: later runs are cached)."""
    files = [f"s3://{ROOT}/{k}" for k in s3.keys(ROOT, "pipelines/synthetic/ExampleGen/") if f"/Split-{split}/" in k]
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_the_pushed_models_config_json_shows_the_config_the_run_used(runs, s3, capsys) -> None:
    """`embedpipe config show` reads the config.json the Trainer wrote into the pushed model, from the bucket."""
    from embedconfig.config import config_as_yaml, load_config
    from pipeline.cli import main

    pushed = f"{runs['first'].pushed_path}/assets.extra/embedpipe/config.json"
    assert main(["config", "show", "--config", pushed]) == 0
    shown = capsys.readouterr().out
    assert shown == config_as_yaml(load_config(runs["work"] / "config.yaml"))
    assert load_config(pushed, check_schema=False) == runs["config"]


def test_the_evaluator_gates_on_a_split_the_trainer_never_read(runs, s3) -> None:
    """Issue 15: selection (early stopping) on validation, the blessing on eval, nothing shared."""
    first = runs["first"]
    training = _read_json(f"{first.pushed_path}/assets.extra/embedpipe/training.json")
    read = training["train_files"] + training["validation_files"]
    assert read and not any("Split-eval" in path for path in read), read
    assert training["train_files"] and all("Split-train" in path for path in training["train_files"])
    assert training["validation_files"] and all("Split-validation" in path for path in training["validation_files"])
    sizes = {split: _split_size(s3, split) for split in ("train", "validation", "eval")}
    assert len(set(sizes.values())) == 3 and sum(sizes.values()) == ROWS, sizes
    assert first.metrics["example_count"] == sizes["eval"], "TFMA evaluated Split-eval and nothing else"


def test_the_trainer_applied_transforms_graph_to_examplegens_examples(runs) -> None:
    """``training.input: raw``, the default: Transform writes its graph and no transformed splits."""
    training = _read_json(f"{runs['first'].pushed_path}/assets.extra/embedpipe/training.json")
    assert training["train_files"] and training["validation_files"], training
    assert all("/ExampleGen/" in path for path in training["train_files"] + training["validation_files"]), training
    assert training["cached_in_memory"] == {"train": True, "validation": True}
    transform_keys = [k for k in runs["keys"][ROOT] if "/Transform/" in f"/{k}"]
    assert any("/transform_graph/" in k for k in transform_keys)
    assert not any("transformed_examples" in k for k in transform_keys), "nothing materialized"


def test_the_summary_ranks_slices_with_their_example_counts(runs) -> None:
    first = runs["first"]
    ranking = first.slices
    assert ranking is not None and ranking.metric == "auc" and len(ranking.slices) >= 6, first.render()
    for s in ranking.slices:  # raw values (not vocabulary ids) of the sliced feature
        assert re.fullmatch(r"target_categories=(cat_\d+|tag_\d)", s.name) and s.examples > 0, s
    assert [s.value for s in ranking.slices] == sorted((s.value for s in ranking.slices), reverse=True)
    assert "slices by auc" in first.render() and "examples)" in first.render()
    assert first.blessed, "the slices are reported, not gated"


def test_every_signature_of_the_pushed_model_answers_from_the_server(runs) -> None:
    """The server is a fresh process that read the model from the bucket: the raw-tensor and the
    Classify signatures agree with serving_default there, for unseen, empty and too-long inputs."""
    served, default = runs["first_signatures"], runs["first_served"]
    assert {"serving_default", "predict_raw", "classify", "transform_features"} <= served["names"]
    assert len(default) == len(SERIALIZED) and all(0.0 < p < 1.0 for p in default)
    np.testing.assert_allclose(served["predict_raw"], default, atol=1e-6)
    np.testing.assert_allclose(served["classify"], default, atol=1e-6)


def test_the_server_serves_the_bucket_like_the_model_in_process_and_picks_up_new_versions(runs) -> None:
    np.testing.assert_allclose(runs["first_served"], runs["first_expected"], atol=1e-6)
    np.testing.assert_allclose(runs["second_served"], runs["second_expected"], atol=1e-6)
    assert runs["versions_after_second"][_version(runs["second"].pushed_path)] == "AVAILABLE"
    assert runs["server_exit"] == 0


def test_second_run_reuses_cache_and_compares_with_the_baseline(runs) -> None:
    first, second = runs["first"], runs["second"]
    assert {"ExampleGen", "StatisticsGen", "Transform"} <= set(second.cached_components)
    assert "Trainer" not in second.cached_components
    assert second.baseline_metrics.get("auc") == pytest.approx(first.metrics["auc"], abs=1e-6)
    assert "compared with the last blessed model" in runs["second_log"] and "(baseline " in runs["second_log"]
    assert second.blessed and second.pushed_path != first.pushed_path


def test_rerun_with_nothing_changed_is_cached_through_to_the_pusher(runs) -> None:
    """The baseline is the last blessed model other than the candidate (components/baseline_strategy.py):
    rerunning the same config gives the Evaluator the inputs it had, so nothing evaluates the model
    against itself, and the canary and the Pusher are cached too."""
    second, third = runs["second"], runs["third"]
    assert {"ExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "ServingCanary", "Pusher"} <= set(third.cached_components)
    assert third.metrics == second.metrics and third.baseline_metrics == second.baseline_metrics
    assert (third.blessed, third.pushed_path) == (second.blessed, second.pushed_path)


def test_only_metadata_and_logs_are_written_to_local_disk(runs) -> None:
    assert runs["first_local"] == {"config.yaml", "metadata.sqlite", "run1.log"}
    assert runs["local"] == {"config.yaml", "config2.yaml", "metadata.sqlite", "run1.log", "run2.log", "run3.log", "serve.log"}


def test_credentials_stay_in_the_environment(runs) -> None:
    import sqlite3

    secret = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    assert secret not in runs["config_text"]
    with sqlite3.connect(runs["work"] / "metadata.sqlite") as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump and CREDENTIALS["AWS_ACCESS_KEY_ID"] not in dump


def test_bad_data_stops_at_the_schema_gate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic(str(data), rows=300, seed=3)
    rows = [json.loads(line) for line in (data / "examples.jsonl").read_text().splitlines()]
    for row in rows[::3]:
        del row["target"]  # a required feature missing from a third of the rows
    (data / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = parse_config(synthetic_raw_config(tmp_path, data, name="embedpipe-bad"))
    out = io.StringIO()
    with pytest.raises(Exception) as info:
        run_locally(config, out=out)
    assert "feature 'target'" in str(info.value), str(info.value)
    assert "Transform ..." not in out.getvalue(), "nothing runs after the gate"


def test_a_label_of_2_under_a_bool_domain_stops_at_the_schema_gate(tmp_path: Path) -> None:
    """A hand-written schema may say bool_domain on the INT label: StatisticsGen then computes it as
    categorical and ExampleValidator lets a 2 through; the gate names it (issue 14, item 9)."""
    data = tmp_path / "data"
    write_synthetic(str(data), rows=300, seed=3)
    rows = [json.loads(line) for line in (data / "examples.jsonl").read_text().splitlines()]
    rows[7]["clicked"] = 2
    (data / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    schema_text = (REPO / "schema" / "synthetic.pbtxt").read_text()
    curated = "int_domain {\n    min: 0\n    max: 1\n  }"
    assert curated in schema_text
    (tmp_path / "bool.pbtxt").write_text(schema_text.replace(curated, "bool_domain {\n  }", 1))
    raw = synthetic_raw_config(tmp_path, data, name="embedpipe-bool-label")
    raw["schema"] = str(tmp_path / "bool.pbtxt")
    out = io.StringIO()
    with pytest.raises(Exception) as info:
        run_locally(parse_config(raw), out=out)
    assert "feature 'clicked': values 2 seen, but the schema declares bool_domain" in str(info.value), str(info.value)
    assert "Transform ..." not in out.getvalue(), "nothing runs after the gate"
