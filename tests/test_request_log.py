"""Request logging (serving/request_log.py) with a real server, real gRPC/REST calls and real files.

Every sampled call is logged once as TF Serving's PredictionLog, readable by TF's TFRecord reader;
sampling draws about the asked share; storage that fails or vanishes fails no request and every
record it lost is counted on the Prometheus endpoint; SIGTERM writes everything accepted.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import TensorFlowServingClient

from serving.monitoring import Metrics
from serving.request_log import LOG_SUFFIX, QUEUE_FULL, STORAGE_ERROR, WRITTEN, LogSettings, RequestLogger
from serving.server import build_parser, start_server
from tests.helpers.synthetic_requests import ROWS, SERIALIZED, row_example

pytestmark = pytest.mark.serving

MODEL = "synthetic"
MONITORING = 'prometheus_config { enable: true path: "/metrics" }'


def _model_dir(small_model: str, tmp_path: Path) -> Path:
    base = tmp_path / "models" / MODEL
    base.mkdir(parents=True)
    shutil.copytree(small_model, base / "1")
    return base


def _start(base: Path, tmp_path: Path, *flags: str):
    import portpicker

    (tmp_path / "monitoring.config").write_text(MONITORING)
    return start_server(build_parser().parse_args([
        "--port=0", f"--rest_api_port={portpicker.pick_unused_port()}", "--file_system_poll_wait_seconds=0",
        f"--monitoring_config_file={tmp_path / 'monitoring.config'}", f"--model_name={MODEL}", f"--model_base_path={base}", *flags]))


def _logged(prefix: Path) -> list[prediction_log_pb2.PredictionLog]:
    """Every record of every complete log file under ``prefix``, read by TF's TFRecord reader."""
    files = sorted(tf.io.gfile.glob(f"{prefix}*{LOG_SUFFIX}"))
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files)] if files else []


def _predict(stub, rows: list[bytes] = SERIALIZED) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(rows, dtype=tf.string))
    return stub.Predict(request, timeout=30)


def _metric(running, outcome: str) -> float:
    """A request-log counter as the Prometheus endpoint shows it (0 when not yet there)."""
    text = urllib.request.urlopen(f"http://localhost:{running.rest_port}/metrics").read().decode()
    line = f':embedpipe:serving:request_log_records{{model_name="{MODEL}",outcome="{outcome}"}} '
    return next((float(x[len(line):]) for x in text.splitlines() if x.startswith(line)), 0.0)


def test_every_call_kind_is_logged_once_with_its_response(small_model: str, tmp_path: Path) -> None:
    prefix = tmp_path / "logs" / "requests"
    running = _start(_model_dir(small_model, tmp_path), tmp_path, f"--request_log_file_prefix={prefix}")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
        answers = {"predict": _predict(stub)}
        classify = classification_pb2.ClassificationRequest()
        classify.model_spec.name, classify.model_spec.signature_name = MODEL, "classify"
        for r in ROWS:
            classify.input.example_list.examples.add().CopyFrom(row_example(r))
        answers["classify"] = stub.Classify(classify, timeout=30)
        regress = regression_pb2.RegressionRequest()
        regress.model_spec.name, regress.model_spec.signature_name = MODEL, "regress"
        regress.input.CopyFrom(classify.input)
        answers["regress"] = stub.Regress(regress, timeout=30)
        multi = inference_pb2.MultiInferenceRequest()
        multi.input.CopyFrom(classify.input)
        for signature, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
            task = multi.tasks.add()
            task.model_spec.name, task.model_spec.signature_name, task.method_name = MODEL, signature, method
        answers["multi_inference"] = stub.MultiInference(multi, timeout=30)
        body = json.dumps({"instances": [{"b64": base64.b64encode(s).decode()} for s in SERIALIZED]}).encode()
        urllib.request.urlopen(urllib.request.Request(f"http://localhost:{running.rest_port}/v1/models/{MODEL}:predict", data=body))
        with pytest.raises(grpc.RpcError):  # a failed call is not logged (TF Serving logs answered calls)
            _predict(stub, [b"not an example"])
        assert not _logged(prefix), "a file still being written is not visible under its final name"
    finally:
        running.stop(grace=2)
    records = _logged(prefix)
    kinds = [r.WhichOneof("log_type") for r in records]
    assert sorted(kinds) == ["classify_log", "multi_inference_log", "predict_log", "predict_log", "regress_log"], kinds
    by_kind = {r.WhichOneof("log_type"): r for r in records}
    for kind, response in answers.items():
        assert getattr(by_kind[f"{kind}_log"], f"{kind}_log").response == response, kind
    assert {r.log_metadata.model_spec.name for r in records} == {MODEL}
    assert {r.log_metadata.model_spec.version.value for r in records} == {1}
    assert _logged_equal_requests(by_kind["classify_log"].classify_log.request, classify)
    assert list(tmp_path.joinpath("logs").iterdir()) and not list(tmp_path.joinpath("logs").glob("*.tmp"))


def _logged_equal_requests(logged, sent) -> bool:
    return logged.SerializeToString(deterministic=True) == sent.SerializeToString(deterministic=True)


def test_sampling_logs_about_the_asked_share(small_model: str, tmp_path: Path) -> None:
    prefix = tmp_path / "logs" / "requests"
    rate, calls = 0.1, 1500
    running = _start(_model_dir(small_model, tmp_path), tmp_path, f"--request_log_file_prefix={prefix}",
                     f"--request_log_sampling_rate={rate}")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
        for _ in range(calls):
            _predict(stub, SERIALIZED[:1])
    finally:
        running.stop(grace=2)
    logged = len(_logged(prefix))
    low, high = stats.binom.interval(0.9999, calls, rate)  # fails by chance once in 10,000 runs
    assert low <= logged <= high, (logged, low, high)


def test_unwritable_log_storage_fails_no_request_and_counts_what_it_lost(small_model: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log directory should be")  # root can write anywhere chmod allows
    running = _start(_model_dir(small_model, tmp_path), tmp_path, f"--request_log_file_prefix={blocker}/logs/requests")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
        for _ in range(20):
            assert len(_predict(stub).outputs["probability"].float_val) == len(SERIALIZED)
        _wait_for(lambda: _metric(running, STORAGE_ERROR) == 20)
        assert _metric(running, WRITTEN) == 0
    finally:
        running.stop(grace=2)


def test_a_vanished_log_directory_fails_no_request_and_every_record_is_written_or_counted(small_model: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    running = _start(_model_dir(small_model, tmp_path), tmp_path, f"--request_log_file_prefix={logs}/requests")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
        for _ in range(10):
            _predict(stub)
        _wait_for(lambda: logs.exists() and any(logs.iterdir()))
        shutil.rmtree(logs)  # the open file's directory is gone
        for _ in range(10):
            _predict(stub)
    finally:
        running.stop(grace=2)
    written, lost = running.handlers.metrics.request_log_count(MODEL, WRITTEN), running.handlers.metrics.request_log_count(MODEL, STORAGE_ERROR)
    assert written + lost == 20 and lost >= 10, (written, lost)
    assert len(_logged(logs / "requests")) == written


def test_sigterm_writes_every_accepted_record(small_model: str, tmp_path: Path) -> None:
    import portpicker

    base, prefix, port = _model_dir(small_model, tmp_path), tmp_path / "logs" / "requests", portpicker.pick_unused_port()
    embedpipe = str(Path(sys.executable).with_name("embedpipe"))
    server = subprocess.Popen([embedpipe, "serve", f"--port={port}", f"--model_name={MODEL}", f"--model_base_path={base}",
                               f"--request_log_file_prefix={prefix}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        TensorFlowServingClient(f"localhost:{port}", MODEL).WaitUntilModelLoaded(time.time() + 120, 0.5)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{port}"))
        for _ in range(200):
            _predict(stub)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, server.stdout.read()[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
    assert len(_logged(prefix)) == 200


def test_files_rotate_by_size_and_age_and_a_full_queue_is_counted(tmp_path: Path) -> None:
    request, response = predict_pb2.PredictRequest(), predict_pb2.PredictResponse()
    request.model_spec.name = response.model_spec.name = MODEL
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(SERIALIZED, dtype=tf.string))
    metrics = Metrics()
    by_size = RequestLogger(MODEL, LogSettings(str(tmp_path / "size" / "r"), 1.0, max_file_bytes=2_000), metrics)
    for _ in range(30):
        by_size.log(request, response)
    by_size.close()
    assert len(list((tmp_path / "size").glob("*" + LOG_SUFFIX))) >= 5 and len(_logged(tmp_path / "size" / "r")) == 30
    by_age = RequestLogger(MODEL, LogSettings(str(tmp_path / "age" / "r"), 1.0, max_file_seconds=0.2), metrics)
    by_age.log(request, response)
    _wait_for(lambda: len(_logged(tmp_path / "age" / "r")) == 1)  # closed by age, while the logger runs on
    by_age.close()

    metrics = Metrics()
    small_queue = RequestLogger(MODEL, LogSettings(str(tmp_path / "queue" / "r"), 1.0), metrics, queue_size=2)
    for _ in range(2000):  # far faster than the writer: the queue fills
        small_queue.log(request, response)
    small_queue.close()
    written, dropped = metrics.request_log_count(MODEL, WRITTEN), metrics.request_log_count(MODEL, QUEUE_FULL)
    assert dropped > 0 and written + dropped == 2000 and len(_logged(tmp_path / "queue" / "r")) == written


REFUSED_LOGGING = [
    ('log_collector_config { type: "kafka" filename_prefix: "/x" } sampling_config { sampling_rate: 1 }', "no log collector of type 'kafka'"),
    ('log_collector_config { filename_prefix: "/x" } sampling_config { sampling_rate: 1.5 }', "sampling_rate must be in [0, 1]"),
    ('sampling_config { sampling_rate: 1 }', "filename_prefix is empty"),
]


def _config_text(base: Path, logging_config: str) -> str:
    return (f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow" '
            f'logging_config {{ {logging_config} }} }} }}')


def test_a_model_config_file_with_a_logging_config_this_server_cannot_apply_exits_2(small_model: str, tmp_path: Path) -> None:
    logging_config, message = REFUSED_LOGGING[0]
    config_file = tmp_path / "models.config"
    config_file.write_text(_config_text(_model_dir(small_model, tmp_path), logging_config))
    embedpipe = str(Path(sys.executable).with_name("embedpipe"))
    out = subprocess.run([embedpipe, "serve", "--port=0", f"--model_config_file={config_file}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]


def test_a_reload_with_a_logging_config_this_server_cannot_apply_is_refused_and_serving_goes_on(small_model: str, tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base = _model_dir(small_model, tmp_path)
    running = _start(base, tmp_path)
    try:
        channel = grpc.insecure_channel(f"localhost:{running.port}")
        for logging_config, message in REFUSED_LOGGING:
            config = text_format.Parse(_config_text(base, logging_config), model_server_config_pb2.ModelServerConfig())
            with pytest.raises(grpc.RpcError) as info:
                model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                    model_management_pb2.ReloadConfigRequest(config=config), timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()
        assert np.isfinite(_predict(prediction_service_pb2_grpc.PredictionServiceStub(channel)).outputs["probability"].float_val).all()
    finally:
        running.stop(grace=2)


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_predict_record_made_of_wire_bytes_is_the_record_made_of_the_messages() -> None:
    from serving.request_log import predict_log_bytes, prediction_log

    request, response = predict_pb2.PredictRequest(), predict_pb2.PredictResponse()
    request.model_spec.name = MODEL
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(SERIALIZED * 100, dtype=tf.string))  # lengths past one varint byte
    response.model_spec.name, response.model_spec.version.value = MODEL, 7
    response.outputs["probability"].CopyFrom(tf.make_tensor_proto(np.arange(300, dtype=np.float32).reshape(300, 1)))
    made = prediction_log_pb2.PredictionLog.FromString(
        predict_log_bytes(request.SerializeToString(), response.SerializeToString(), response.model_spec.SerializeToString()))
    assert made == prediction_log(request, response)


def test_the_prediction_service_handler_answers_every_method_of_the_service() -> None:
    """Predict is registered by hand (wire bytes); the other methods must not go missing with it."""
    from types import SimpleNamespace

    from tensorflow_serving.apis import prediction_service_pb2

    from serving.grpc_services import PredictionService, prediction_service_handler

    handler = prediction_service_handler(PredictionService(None, None))
    methods = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].methods
    assert len(methods) == 5
    for method in methods:
        rpc = handler.service(SimpleNamespace(method=f"/tensorflow.serving.PredictionService/{method.name}"))
        assert rpc is not None and rpc.unary_unary.__func__.__module__ == "serving.grpc_services", method.name
