"""What TF Serving 2.16.1's own integration tests check, against ``embedpipe serve``.

Each test here covers one case of tensorflow_serving/model_servers/tensorflow_model_server_test.py
(named in its docstring), on models built as TF Serving's testdata generator builds them
(tests/helpers/tfs_models.py), in zero-padded version folders as there, with the flags its test base
always passes (``--rest_api_timeout_in_ms``, ``--grpc_socket_path``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.server import build_parser, start_server
from tests.helpers.tfs_models import (
    example,
    predict_x_request,
    write_half_plus,
    write_tf2_half_plus_two,
    write_tflite_with_signature,
)

pytestmark = pytest.mark.serving

MONITORING_CONFIG = 'prometheus_config: {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n'
GOOD_MODEL_CONFIG = """model_config_list: {
  config: {
    name: "half_plus_two",
    base_path: "%s",
    model_platform: "tensorflow"
  },
  config: {
    name: "half_plus_three",
    base_path: "%s",
    model_platform: "tensorflow"
  }
}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tfs_testdata")
    write_half_plus(str(root / "saved_model_half_plus_two_cpu"), b=2.0)
    write_half_plus(str(root / "saved_model_half_plus_three"), b=3.0)
    write_tf2_half_plus_two(str(root / "saved_model_half_plus_two_tf2_cpu"))
    write_half_plus(str(root / "saved_model_half_plus_two_tflite"), b=2.0, tflite=True)
    write_tflite_with_signature(str(root / "saved_model_half_plus_two_tflite_with_sigdef"))
    (root / "monitoring_config.txt").write_text(MONITORING_CONFIG)
    (root / "bad_model_config.txt").write_text("improperly formatted file")
    return {"root": root, "two": root / "saved_model_half_plus_two_cpu", "three": root / "saved_model_half_plus_three",
            "tf2": root / "saved_model_half_plus_two_tf2_cpu", "tflite": root / "saved_model_half_plus_two_tflite",
            "tflite_sigdef": root / "saved_model_half_plus_two_tflite_with_sigdef"}


def _serve(tmp_path: Path, *flags: str):
    """Start the server in-process with the flags TF Serving's test base always adds."""
    import portpicker

    args = ["--port=0", f"--rest_api_port={portpicker.pick_unused_port()}", "--rest_api_timeout_in_ms=5000",
            f"--grpc_socket_path={tmp_path / 'tf-serving.sock'}", *flags]
    return start_server(build_parser().parse_args(args))


class _Binary:
    """A real ``tensorflow_model_server`` started with the same flags (where one is on PATH)."""

    def __init__(self, binary: str, flags: list[str]) -> None:
        import portpicker

        self.port, self.rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
        self.process = subprocess.Popen([binary, f"--port={self.port}", f"--rest_api_port={self.rest_port}", *flags])
        prediction, _ = _stub(f"localhost:{self.port}")

        def ready() -> bool:  # TF Serving's test base: a missing model answers "Servable ..." once up
            try:
                prediction.Predict(predict_x_request("intentionally_missing_model"), 5)
            except grpc.RpcError as e:
                return "Servable" in (e.details() or "")
            return False

        assert _wait_for(ready, timeout=60), "tensorflow_model_server did not come up"

    def stop(self, grace: float = 1) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module", params=["embedpipe", "tensorflow_model_server"])
def default_server(request, models, tmp_path_factory):
    """``--model_name=default`` on half_plus_two, with Prometheus on: the server most cases use;
    the same cases run against a real ``tensorflow_model_server`` where one is on PATH."""
    uds = tmp_path_factory.mktemp("uds")
    flags = ["--model_name=default", f"--model_base_path={models['two']}",
             f"--monitoring_config_file={models['root'] / 'monitoring_config.txt'}"]
    if request.param == "tensorflow_model_server":
        import shutil

        binary = shutil.which("tensorflow_model_server")
        if binary is None:
            pytest.skip("no tensorflow_model_server binary on PATH; the comparison with real TF Serving runs where one is installed")
        running = _Binary(binary, ["--rest_api_timeout_in_ms=5000", f"--grpc_socket_path={uds / 'tf-serving.sock'}", *flags])
    else:
        running = _serve(uds, *flags)
    yield running
    running.stop(grace=1)


def _stub(target: str):
    channel = grpc.insecure_channel(target)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)


def _rest(running, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(f"http://localhost:{running.rest_port}{path}", data=data, timeout=30) as r:
        return r.status, r.read().decode()


def _multi_inference_request() -> inference_pb2.MultiInferenceRequest:
    """A regress and a classify task on one example (x=2), as testMultiInference sends them."""
    request = inference_pb2.MultiInferenceRequest()
    request.input.example_list.examples.add().CopyFrom(example(2.0))
    for signature, method in (("regress_x_to_y", "tensorflow/serving/regress"), ("classify_x_to_y", "tensorflow/serving/classify")):
        task = request.tasks.add()
        task.model_spec.name, task.model_spec.signature_name, task.method_name = "default", signature, method
    return request


def _check_predict(response: predict_pb2.PredictResponse, y: float, model: str = "default") -> None:
    assert list(response.outputs["y"].float_val) == [y]  # typed values, not tensor_content
    assert response.model_spec.name == model and response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 123


# --------------------------------------------------------------------------- gRPC


def test_get_model_status(default_server) -> None:
    """testGetModelStatus: version 123 of the zero-padded folder, AVAILABLE, OK."""
    _, model_service = _stub(f"localhost:{default_server.port}")
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    (status,) = model_service.GetModelStatus(request, 10).model_version_status
    assert status.version == 123 and status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0 and status.status.error_message == ""


def test_get_model_metadata(default_server) -> None:
    """testGetModelMetadata: signature_def is the only metadata field, an Any holding a SignatureDefMap."""
    prediction, _ = _stub(f"localhost:{default_server.port}")
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "default"
    response = prediction.GetModelMetadata(request, 10)
    assert response.model_spec.name == "default" and response.model_spec.version.value == 123
    assert list(response.metadata) == ["signature_def"]
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["serving_default"].outputs["y"].name == "y:0"


def test_classify(default_server) -> None:
    """testClassify: classify_x_to_y on x=2 is one class with score 3."""
    prediction, _ = _stub(f"localhost:{default_server.port}")
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "default", "classify_x_to_y"
    request.input.example_list.examples.add().CopyFrom(example(2.0))
    response = prediction.Classify(request, 10)
    assert len(response.result.classifications) == 1 and len(response.result.classifications[0].classes) == 1
    assert response.result.classifications[0].classes[0].score == 3.0
    assert (response.model_spec.name, response.model_spec.signature_name, response.model_spec.version.value) == (
        "default", "classify_x_to_y", 123)


def test_regress(default_server) -> None:
    """testRegress: regress_x_to_y on x=2 is 3."""
    prediction, _ = _stub(f"localhost:{default_server.port}")
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "default", "regress_x_to_y"
    request.input.example_list.examples.add().CopyFrom(example(2.0))
    response = prediction.Regress(request, 10)
    assert [r.value for r in response.result.regressions] == [3.0]
    assert response.model_spec.signature_name == "regress_x_to_y" and response.model_spec.version.value == 123


def test_multi_inference(default_server) -> None:
    """testMultiInference: a regress and a classify task on one input, each result with its model_spec."""
    prediction, _ = _stub(f"localhost:{default_server.port}")
    results = prediction.MultiInference(_multi_inference_request(), 10).results
    assert len(results) == 2
    assert results[0].regression_result.regressions[0].value == 3.0
    assert results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert [r.model_spec.signature_name for r in results] == ["regress_x_to_y", "classify_x_to_y"]


def test_predict_saved_model(default_server) -> None:
    """testPredictSavedModel: x of shape [1] on a [-1, 1] signature, with and without output_filter."""
    prediction, _ = _stub(f"localhost:{default_server.port}")
    _check_predict(prediction.Predict(predict_x_request(), 10), 3.0)
    filtered = predict_x_request()
    filtered.output_filter.append("y")
    _check_predict(prediction.Predict(filtered, 10), 3.0)


def test_predict_over_the_unix_socket(default_server, tmp_path_factory) -> None:
    """testPredictUDS: the same services on --grpc_socket_path."""
    sockets = sorted(Path(tmp_path_factory.getbasetemp()).glob("uds*/tf-serving.sock"), key=lambda p: p.stat().st_mtime)
    assert sockets, "the server listens on its UNIX socket"
    prediction, _ = _stub(f"unix:{sockets[-1]}")
    _check_predict(prediction.Predict(predict_x_request(), 10), 3.0)


def test_a_missing_model_is_not_found_naming_the_servable(default_server) -> None:
    """The test base's readiness probe: Predict on a missing model answers 'Servable ...'."""
    prediction, _ = _stub(f"localhost:{default_server.port}")
    with pytest.raises(grpc.RpcError) as e:
        prediction.Predict(predict_x_request("intentionally_missing_model"), 10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "Servable" in e.value.details()


@pytest.mark.parametrize("rpc", ["classify", "regress", "multi_inference"])
def test_tf2_signatures_with_the_predict_method_name(models, tmp_path: Path, rpc: str) -> None:
    """testClassifyTf2, testRegressTf2, testMultiInferenceTf2: TF2 writes every signature as predict."""
    running = _serve(tmp_path, "--model_name=default", f"--model_base_path={models['tf2']}")
    try:
        prediction, _ = _stub(f"localhost:{running.port}")
        if rpc == "classify":
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name, request.model_spec.signature_name = "default", "classify_x_to_y"
            request.input.example_list.examples.add().CopyFrom(example(2.0))
            assert prediction.Classify(request, 10).result.classifications[0].classes[0].score == 3.0
        elif rpc == "regress":
            request = regression_pb2.RegressionRequest()
            request.model_spec.name, request.model_spec.signature_name = "default", "regress_x_to_y"
            request.input.example_list.examples.add().CopyFrom(example(2.0))
            assert prediction.Regress(request, 10).result.regressions[0].value == 3.0
        else:
            results = prediction.MultiInference(_multi_inference_request(), 10).results
            assert results[0].regression_result.regressions[0].value == 3.0
            assert results[1].classification_result.classifications[0].classes[0].score == 3.0
    finally:
        running.stop(grace=1)


# --------------------------------------------------------------------------- model config files


def test_good_model_config(models, tmp_path: Path) -> None:
    """testGoodModelConfig: two models from a config file (commas between fields), 3 and 4."""
    config = tmp_path / "good_model_config.txt"
    config.write_text(GOOD_MODEL_CONFIG % (models["two"], models["three"]))
    running = _serve(tmp_path, f"--model_config_file={config}")
    try:
        prediction, _ = _stub(f"localhost:{running.port}")
        _check_predict(prediction.Predict(predict_x_request("half_plus_two"), 10), 3.0, "half_plus_two")
        _check_predict(prediction.Predict(predict_x_request("half_plus_three"), 10), 4.0, "half_plus_three")
    finally:
        running.stop(grace=1)


def test_bad_model_config_says_so_on_stderr_and_exits(models) -> None:
    """testBadModelConfig: TF Serving's message on stderr, and the process ends."""
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "serve", f"--model_config_file={models['root'] / 'bad_model_config.txt'}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in result.stderr


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("poll_seconds", [1, 0])
def test_model_config_reload(models, tmp_path: Path, poll_seconds: int) -> None:
    """testModelConfigReload (poll 1: the rewritten config is served) and ...WithZeroPollPeriod (0: never reloaded)."""
    config = tmp_path / "model_config.txt"
    one_model = 'model_config_list: { config: { name: "%s", base_path: "%s", model_platform: "tensorflow" } }'
    config.write_text(one_model % ("half_plus_two", models["two"]))
    running = _serve(tmp_path, f"--model_config_file={config}", f"--model_config_file_poll_wait_seconds={poll_seconds}")
    try:
        prediction, _ = _stub(f"localhost:{running.port}")
        _check_predict(prediction.Predict(predict_x_request("half_plus_two"), 10), 3.0, "half_plus_two")
        config.write_text(one_model % ("half_plus_three", models["three"]))

        def three_served() -> bool:
            try:
                return list(prediction.Predict(predict_x_request("half_plus_three"), 10).outputs["y"].float_val) == [4.0]
            except grpc.RpcError:
                return False

        if poll_seconds:
            assert _wait_for(three_served, timeout=10)
            with pytest.raises(grpc.RpcError) as e:  # the model left out of the new config is unloaded
                prediction.Predict(predict_x_request("half_plus_two"), 10)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
        else:
            time.sleep(3)
            assert not three_served()
            _check_predict(prediction.Predict(predict_x_request("half_plus_two"), 10), 3.0, "half_plus_two")
    finally:
        running.stop(grace=1)


def test_good_grpc_channel_arguments(models, tmp_path: Path) -> None:
    """testGoodGrpcChannelArgs: integer and string channel arguments, then serving as usual."""
    running = _serve(tmp_path, "--model_name=default", f"--model_base_path={models['two']}",
                     "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb")
    try:
        prediction, _ = _stub(f"localhost:{running.port}")
        _check_predict(prediction.Predict(predict_x_request(), 10), 3.0)
    finally:
        running.stop(grace=1)


# --------------------------------------------------------------------------- REST


def test_classify_rest(default_server) -> None:
    """testClassifyREST."""
    status, body = _rest(default_server, "/v1/models/default:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})
    assert status == 200 and json.loads(body) == {"results": [[["", 3.0]]]}


def test_regress_rest(default_server) -> None:
    """testRegressREST."""
    status, body = _rest(default_server, "/v1/models/default:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]})
    assert status == 200 and json.loads(body) == {"results": [3.0]}


def test_predict_rest(default_server) -> None:
    """testPredictREST: row format, a [3] input on a [-1, 1] signature, the flat answer."""
    status, body = _rest(default_server, "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]})
    assert status == 200 and json.loads(body) == {"predictions": [3.0, 3.5, 4.0]}


def test_predict_columnar_rest(default_server) -> None:
    """testPredictColumnarREST."""
    status, body = _rest(default_server, "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]})
    assert status == 200 and json.loads(body) == {"outputs": [3.0, 3.5, 4.0]}


def test_get_status_rest(default_server) -> None:
    """testGetStatusREST: compared whole, as TF Serving's test does."""
    status, body = _rest(default_server, "/v1/models/default")
    assert status == 200
    assert json.loads(body) == {"model_version_status": [{"version": "123", "state": "AVAILABLE",
                                                          "status": {"error_code": "OK", "error_message": ""}}]}


def _tensor(name: str, dtype: str, dims: list[int] | None) -> dict:
    shape = {"dim": [], "unknown_rank": True} if dims is None else {"dim": [{"size": str(d), "name": ""} for d in dims],
                                                                     "unknown_rank": False}
    return {"dtype": dtype, "tensor_shape": shape, "name": name}


def test_get_model_metadata_rest(default_server) -> None:
    """testGetModelMetadataREST: half_plus_two_model_metadata.json (TF 2.16's, with "defaults": {})."""
    status, body = _rest(default_server, "/v1/models/default/metadata")
    example_input = {"inputs": _tensor("tf_example:0", "DT_STRING", None)}

    def signature(inputs: dict, outputs: dict, method: str) -> dict:
        return {"inputs": inputs, "outputs": outputs, "method_name": f"tensorflow/serving/{method}", "defaults": {}}

    expected = {
        "model_spec": {"name": "default", "signature_name": "", "version": "123"},
        "metadata": {"signature_def": {"signature_def": {
            "regress_x2_to_y3": signature({"inputs": _tensor("x2:0", "DT_FLOAT", [-1, 1])}, {"outputs": _tensor("y3:0", "DT_FLOAT", [-1, 1])}, "regress"),
            "serving_default": signature({"x": _tensor("x:0", "DT_FLOAT", [-1, 1])}, {"y": _tensor("y:0", "DT_FLOAT", [-1, 1])}, "predict"),
            "classify_x_to_y": signature(example_input, {"scores": _tensor("y:0", "DT_FLOAT", [-1, 1])}, "classify"),
            "regress_x_to_y2": signature(example_input, {"outputs": _tensor("y2:0", "DT_FLOAT", [-1, 1])}, "regress"),
            "regress_x_to_y": signature(example_input, {"outputs": _tensor("y:0", "DT_FLOAT", [-1, 1])}, "regress"),
        }}},
    }
    assert status == 200 and json.loads(body) == expected


def test_prometheus_endpoint(default_server) -> None:
    """testPrometheusEndpoint: --monitoring_config_file serves metrics on the REST port."""
    _rest(default_server, "/v1/models/default:predict", {"instances": [2.0]})
    status, body = _rest(default_server, "/monitoring/prometheus/metrics")
    assert status == 200 and "# TYPE" in body
    assert ':tensorflow:cc:saved_model:load_attempt_count{model_path="' in body and 'status="success"} 1' in body
    assert ':tensorflow:serving:request_count{model_name="default",status="OK"}' in body
    assert ':tensorflow:serving:request_latency_bucket{model_name="default",API="predict",entrypoint="REST",le="+Inf"}' in body


# --------------------------------------------------------------------------- TFLite


@pytest.mark.parametrize("model", ["tflite", "tflite_sigdef"])
def test_predict_on_tflite(models, tmp_path: Path, model: str) -> None:
    """testPredictOnTfLite (tensor names x, y) and testPredictWithSignatureDefOnTfLite (the file's SignatureDef)."""
    running = _serve(tmp_path, "--model_name=default", f"--model_base_path={models[model]}", "--prefer_tflite_model=true")
    try:
        prediction, _ = _stub(f"localhost:{running.port}")
        _check_predict(prediction.Predict(predict_x_request(), 10), 3.0)  # [1] fed to a [1, 1] input: resized
    finally:
        running.stop(grace=1)


def test_without_prefer_tflite_the_saved_model_is_served(models, tmp_path: Path) -> None:
    running = _serve(tmp_path, "--model_name=default", f"--model_base_path={models['tflite']}")
    try:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "default"
        signatures = get_model_metadata_pb2.SignatureDefMap()
        _stub(f"localhost:{running.port}")[0].GetModelMetadata(request, 10).metadata["signature_def"].Unpack(signatures)
        assert "regress_x_to_y" in signatures.signature_def  # the SavedModel's signatures, not the TFLite file's
    finally:
        running.stop(grace=1)


# --------------------------------------------------------------------------- profiler


def test_profiler_service_with_valid_trace_request(default_server, tmp_path: Path) -> None:
    """test_profiler_service_with_valid_trace_request: TensorFlow's own profiler client traces the
    server on its gRPC port while REST predictions run; the trace is written where the client looks."""
    import threading

    from tensorflow.python.profiler import profiler_client

    stop = threading.Event()

    def predict_until_stopped() -> None:
        while not stop.is_set():
            _rest(default_server, "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]})

    load = threading.Thread(target=predict_until_stopped, daemon=True)
    load.start()
    try:
        profiler_client.trace(f"localhost:{default_server.port}", str(tmp_path / "logs"), duration_ms=1000,
                              worker_list="", num_tracing_attempts=10)
    finally:
        stop.set()
        load.join(timeout=30)
    traces = list((tmp_path / "logs").rglob("*.xplane.pb"))
    assert traces and traces[0].stat().st_size > 0


# --------------------------------------------------------------------------- TF2 and Keras SavedModels


def _predict_x(running, x, signature: str = "serving_default", batch: bool = False, output_filter: str | None = None):
    prediction, _ = _stub(f"localhost:{running.port}")
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "default", signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[x]] if batch else [x], dtype=tf.float32))
    if output_filter:
        request.output_filter.append(output_filter)
    return prediction.Predict(request, 30)


@pytest.mark.parametrize("case", ["checkpoint", "two_signatures", "keras", "distributed_keras"])
def test_tf2_and_keras_saved_models(tmp_path: Path, case: str) -> None:
    """test_tf_saved_model_save (12), test_tf_saved_model_save_multiple_signatures (2 and 1, scalar
    outputs), test_sequential_keras_saved_model_save and test_distrat_sequential_keras_saved_model_save (2)."""
    from tests.helpers import tfs_models

    base = tmp_path / case
    if case == "checkpoint":
        tfs_models.write_checkpoint_function(str(base))
    elif case == "two_signatures":
        tfs_models.write_two_signatures(str(base))
    elif case == "keras":
        tfs_models.write_keras_sequential(str(base))
    else:
        subprocess.run([sys.executable, "-c", tfs_models.DISTRIBUTED_KERAS_SCRIPT, str(base)], check=True, timeout=300,
                       capture_output=True)
    running = _serve(tmp_path, "--model_name=default", f"--model_base_path={base}")
    try:
        if case == "checkpoint":
            response = _predict_x(running, 2.0)
            assert list(response.outputs["y"].float_val) == [12.0]
        elif case == "two_signatures":
            response = _predict_x(running, 2.0, "custom_signature_key", output_filter="y")
            assert list(response.outputs["y"].float_val) == [2.0] and response.model_spec.signature_name == "custom_signature_key"
            assert list(_predict_x(running, 2.0, output_filter="y").outputs["y"].float_val) == [1.0]
        else:
            response = _predict_x(running, 2.0, batch=True)
            assert list(response.outputs["y"].float_val) == [2.0]
        assert response.model_spec.version.value == 123
    finally:
        running.stop(grace=1)


def test_tf_text(tmp_path: Path) -> None:
    """test_tf_text: a model with TF Text kernels loads (the server registers them), version folder 01 is version 1."""
    import portpicker

    from tests.helpers.tfs_models import write_tf_text_model

    write_tf_text_model(str(tmp_path / "tf_text_regression"))
    port = portpicker.pick_unused_port()
    server = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", f"--port={port}", "--model_name=default",
                               f"--model_base_path={tmp_path / 'tf_text_regression'}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        prediction, _ = _stub(f"localhost:{port}")
        request = predict_x_request()
        request.output_filter.append("y")

        def answered() -> bool:
            try:
                return list(prediction.Predict(request, 30).outputs["y"].float_val) == [3.0]
            except grpc.RpcError:
                return False

        assert _wait_for(answered, timeout=120), "the TF Text model did not load"
        assert prediction.Predict(request, 30).model_spec.version.value == 1
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr[-2000:]
