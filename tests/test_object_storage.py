"""The whole pipeline with data, pipeline root and pushed models in buckets, as on Kubeflow.

A local S3-API server (moto's, the stand-in for MinIO or S3) holds three buckets. ``embedpipe
run`` reads the raw JSONL from one, writes every artifact to another and pushes into the third;
only the SQLite metadata store and the run's log may appear on local disk. ``embedpipe serve``
serves the pushed model straight from the bucket, answers like the model loaded in-process, and
picks up the version a second (cached) run pushes. Credentials reach every process through the
standard environment variables only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from storage import configure_s3_environment
from storage.tfio_exit_fix import SHUTDOWN_SYMBOL, elf_symbol_offset
from tests.helpers.configs import synthetic_raw_config
from tests.helpers.s3_server import CREDENTIALS
from tests.helpers.synthetic_requests import SERIALIZED

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 900  # seconds; a cold run takes ~100 s on 2 cores
DATA, ROOT, MODELS = "embedpipe-data", "embedpipe-root", "embedpipe-models"
PROBES = "embedpipe-exit-probes"
MODEL_NAME = "synthetic"

_S3_WRITE = """
import sys
sys.path.insert(0, {repo!r})
import storage
if sys.argv[1] == "fixed":
    storage.enable_object_storage()
else:  # what any process gets that imports tensorflow-io (TFT and TFMA do) and touches a bucket
    storage.configure_s3_environment()
    import tensorflow_io
import tensorflow as tf
with tf.io.gfile.GFile("s3://{bucket}/exit-probe/" + sys.argv[2], "w") as f:
    f.write("written")
sys.exit(int(sys.argv[2]))
"""


def _write_probe(s3, code: int, fixed: bool) -> subprocess.CompletedProcess:
    script = _S3_WRITE.format(repo=str(Path(__file__).resolve().parents[1]), bucket=PROBES)
    return subprocess.run([sys.executable, "-c", script, "fixed" if fixed else "plain", str(code)],
                          env={**_base_env(), **s3.env()}, capture_output=True, text=True, timeout=120)


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}


@pytest.fixture(scope="module")
def probes_bucket(s3) -> None:
    s3.client().create_bucket(Bucket=PROBES)


def test_a_process_that_wrote_to_a_bucket_exits_with_its_own_code(s3, probes_bucket) -> None:
    for code in (0, 3):
        fixed = _write_probe(s3, code, fixed=True)
        assert fixed.returncode == code, fixed.stderr[-2000:]
    assert sorted(s3.keys(PROBES, "exit-probe/")) == ["exit-probe/0", "exit-probe/3"]


def test_without_the_exit_fix_tensorflow_io_still_aborts(s3, probes_bucket) -> None:
    """The upstream bug the fix exists for (tensorflow/io#2039); if this fails, the fix may go."""
    plain = _write_probe(s3, 0, fixed=False)
    assert plain.returncode == -signal.SIGABRT and "pure virtual method called" in plain.stderr


def test_the_exit_fix_finds_its_symbol_in_the_pinned_plugin() -> None:
    import tensorflow_io

    plugin = Path(tensorflow_io.__file__).parent / "python" / "ops" / "libtensorflow_io_plugins.so"
    assert elf_symbol_offset(str(plugin), SHUTDOWN_SYMBOL) is not None
    assert elf_symbol_offset(str(plugin), b"no_such_symbol") is None


def test_tensorflow_io_gets_its_endpoint_from_the_standard_variables() -> None:
    env = {"AWS_ENDPOINT_URL_S3": "http://minio.kubeflow:9000", "AWS_DEFAULT_REGION": "eu-west-1"}
    configure_s3_environment(env)
    assert env["S3_ENDPOINT"] == "http://minio.kubeflow:9000" and env["S3_USE_HTTPS"] == "0"
    assert env["AWS_REGION"] == "eu-west-1"
    own = {"AWS_ENDPOINT_URL": "https://s3.example.com", "S3_ENDPOINT": "https://other:9000"}
    configure_s3_environment(own)
    assert own["S3_ENDPOINT"] == "https://other:9000" and "S3_USE_HTTPS" not in own  # the user's own setting wins


# --------------------------------------------------------------------------- the whole pipeline


def _run(config: Path, work: Path, env: dict[str, str], log_name: str) -> tuple[int, str]:
    with open(work / log_name, "w") as log:
        code = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", str(config)], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT).returncode
    return code, (work / log_name).read_text()


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


@pytest.fixture(scope="module")
def bucket_runs(s3, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two runs on the buckets with a server on the push base between and after them."""
    from pipeline.datasets.synthetic import write_synthetic
    from serving.client import ModelClient

    client = s3.client()
    for bucket in (DATA, ROOT, MODELS):
        client.create_bucket(Bucket=bucket)
    data_path = write_synthetic(f"s3://{DATA}/raw", rows=3000, seed=0)  # the data tool writes to a bucket too
    assert data_path == f"s3://{DATA}/raw/examples.jsonl" and s3.keys(DATA) == ["raw/examples.jsonl"]

    work = tmp_path_factory.mktemp("bucket-run")  # cwd, config, metadata, logs and TMPDIR of every process
    raw = synthetic_raw_config(work, work, name="embedpipe-s3")
    raw["pipeline"]["root"] = f"s3://{ROOT}/pipelines/synthetic"
    raw["data"]["path"] = f"s3://{DATA}/raw/"
    raw["push"]["base_directory"] = f"s3://{MODELS}/serving"
    raw["training"]["epochs"] = 3
    raw["evaluation"]["no_regression"] = {"AUC": 0.1}  # the retrain is compared, and pushed unless far worse
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    (work / "tmp").mkdir()
    env = {**_base_env(), **s3.env(), "TMPDIR": str(work / "tmp"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    record: dict = {"work": work, "config": config.read_text()}
    record["first_code"], record["first"] = _run(config, work, env, "run1.log")
    assert record["first_code"] == 0, record["first"][-4000:]
    record["first_local"] = _local_files(work)
    record["first_pushed"] = next(line.split(": ", 1)[1] for line in record["first"].splitlines() if line.startswith("pushed: "))

    server, port = _start_server(env, work)
    model_client = ModelClient(f"127.0.0.1:{port}", MODEL_NAME)
    try:
        first_version = int(record["first_pushed"].rsplit("/", 1)[1])
        _wait_for_version(model_client, server, first_version)
        record["first_served"] = np.array(model_client.predict_serialized(SERIALIZED))
        record["first_expected"] = _in_process_scores(record["first_pushed"])

        retrain = dict(raw, training={**raw["training"], "seed": 1})  # the Trainer runs again, upstream is cached
        config2 = work / "config2.yaml"
        config2.write_text(yaml.safe_dump(retrain))
        record["second_code"], record["second"] = _run(config2, work, env, "run2.log")
        assert record["second_code"] == 0, record["second"][-4000:]
        record["second_pushed"] = next(line.split(": ", 1)[1] for line in record["second"].splitlines() if line.startswith("pushed: "))
        second_version = int(record["second_pushed"].rsplit("/", 1)[1])
        record["versions_after_second"] = _wait_for_version(model_client, server, second_version)
        record["second_served"] = np.array(model_client.predict_serialized(SERIALIZED))
        record["second_expected"] = _in_process_scores(record["second_pushed"])
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


def test_a_run_on_buckets_is_blessed_canaried_and_pushed_into_the_bucket(bucket_runs: dict) -> None:
    summary = bucket_runs["first"]
    assert "blessed: yes" in summary and "serving canary: passed" in summary
    assert bucket_runs["first_pushed"].startswith(f"s3://{MODELS}/serving/{MODEL_NAME}/")
    version = bucket_runs["first_pushed"].rsplit("/", 1)[1]
    pushed = {k for k in bucket_runs["keys"][MODELS] if k.startswith(f"serving/{MODEL_NAME}/{version}/")}
    assert f"serving/{MODEL_NAME}/{version}/saved_model.pb" in pushed
    assert f"serving/{MODEL_NAME}/{version}/assets.extra/tf_serving_warmup_requests" in pushed
    artifacts = bucket_runs["keys"][ROOT]
    for component in ("ExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "ServingCanary", "Pusher"):
        assert any(k.startswith(f"pipelines/synthetic/{component}/") for k in artifacts), component
    assert not any("/canary_base/" in k for k in artifacts), "the canary's served copy is removed"


def test_only_metadata_and_logs_are_written_to_local_disk(bucket_runs: dict) -> None:
    assert bucket_runs["first_local"] == {"config.yaml", "metadata.sqlite", "run1.log"}
    assert bucket_runs["local"] == {"config.yaml", "config2.yaml", "metadata.sqlite", "run1.log", "run2.log", "serve.log"}


def test_the_server_serves_the_bucket_like_the_model_in_process_and_picks_up_new_versions(bucket_runs: dict) -> None:
    np.testing.assert_allclose(bucket_runs["first_served"], bucket_runs["first_expected"], atol=1e-6)
    np.testing.assert_allclose(bucket_runs["second_served"], bucket_runs["second_expected"], atol=1e-6)
    second_version = int(bucket_runs["second_pushed"].rsplit("/", 1)[1])
    assert bucket_runs["versions_after_second"][second_version] == "AVAILABLE"
    assert bucket_runs["server_exit"] == 0


def test_a_second_run_on_the_buckets_reuses_the_cache_and_compares_with_the_blessed_baseline(bucket_runs: dict) -> None:
    summary = bucket_runs["second"]
    assert "reused from cache: ExampleGen, StatisticsGen, Transform" in summary and "Trainer" not in summary.split("reused from cache:")[1]
    assert "compared with the last blessed model" in summary and "(baseline " in summary
    assert bucket_runs["second_pushed"] != bucket_runs["first_pushed"]


def test_credentials_stay_in_the_environment(bucket_runs: dict) -> None:
    import sqlite3

    secret = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    assert secret not in bucket_runs["config"]
    with sqlite3.connect(bucket_runs["work"] / "metadata.sqlite") as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump and CREDENTIALS["AWS_ACCESS_KEY_ID"] not in dump
