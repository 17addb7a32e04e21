"""The model server against the stock tensorflow_serving stubs and TFX's own TF Serving client.

The model is a small one of this project, exported as the pipeline exports it (the ``small_model``
session fixture, tests/helpers/small_model.py), copied into fresh model directories. Each conformance case runs against this project's server and, when a
``tensorflow_model_server`` binary is on PATH, against it too (else that case is skipped, saying so).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2
from tfx.components.infra_validator import types as infra_types
from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import TensorFlowServingClient

from serving.client import ModelClient
from serving.servable import LoadOptions, ServableVersion
from serving.server import build_parser, session_config, start_server
from tests.helpers.synthetic_requests import RAW_INPUTS, ROWS, SERIALIZED, row_example

pytestmark = pytest.mark.serving

MODEL = "synthetic"


def _copy_version(model_dir: str, base: Path, version: int) -> None:
    """Copy a SavedModel in as ``base/version`` the way a push lands: complete, then visible."""
    staging = base / f".staging-{version}"
    shutil.copytree(model_dir, staging)
    os.rename(staging, base / str(version))


@pytest.fixture(scope="module")
def expected(small_model: str) -> np.ndarray:
    """In-process scores of ROWS: what every served answer must match."""
    model = tf.saved_model.load(small_model)
    return model.signatures["serving_default"](examples=tf.constant(SERIALIZED))["probability"].numpy().reshape(-1)


def _start(*flags: str):
    return start_server(build_parser().parse_args(["--port=0", "--file_system_poll_wait_seconds=0.2", *flags]))


@pytest.fixture(scope="module", params=["embedpipe", "tensorflow_model_server"])
def server(request, small_model: str, tmp_path_factory: pytest.TempPathFactory):
    """(endpoint, backend name) serving MODEL version 1 and 2 (same weights) with labels."""
    base = tmp_path_factory.mktemp("models") / MODEL
    base.mkdir()
    _copy_version(small_model, base, 1)
    _copy_version(small_model, base, 2)
    config_file = base.parent / "models.config"
    config_file.write_text(
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow" '
        'model_version_policy { all {} } version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } }'
    )
    if request.param == "tensorflow_model_server":
        binary = shutil.which("tensorflow_model_server")
        if binary is None:
            pytest.skip("no tensorflow_model_server binary on PATH; the comparison with real TF Serving runs where one is installed")
        import portpicker

        port = portpicker.pick_unused_port()
        process = subprocess.Popen([binary, f"--port={port}", f"--model_config_file={config_file}"])
        endpoint = f"localhost:{port}"
        ModelClient(endpoint, MODEL)  # channel warms up
        TensorFlowServingClient(endpoint, MODEL).WaitUntilModelLoaded(time.time() + 120, 0.5)
        yield endpoint, request.param
        process.terminate()
        process.wait()
        return
    running = _start(f"--model_config_file={config_file}")
    yield f"localhost:{running.port}", request.param
    running.stop(grace=2)


@pytest.fixture
def stubs(server):
    channel = grpc.insecure_channel(server[0])
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def _predict_request(signature: str = "", **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.get("name", MODEL)
    request.model_spec.signature_name = signature
    if "version" in spec:
        request.model_spec.version.value = spec["version"]
    if "label" in spec:
        request.model_spec.version_label = spec["label"]
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(SERIALIZED, dtype=tf.string))
    return request


def _classify_request(signature: str = "classify") -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, signature
    for r in ROWS:
        request.input.example_list.examples.add().CopyFrom(row_example(r))
    return request


# ---------------------------------------------------------------------------- conformance


def test_predict_empty_signature_is_serving_default_on_the_latest_version(stubs, expected) -> None:
    prediction, _ = stubs
    response = prediction.Predict(_predict_request())
    scores = tf.make_ndarray(response.outputs["probability"]).reshape(-1)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"
    assert response.outputs["probability"].float_val, "answers use the typed fields"


def test_predict_by_version_and_label(stubs) -> None:
    prediction, _ = stubs
    assert prediction.Predict(_predict_request(version=1)).model_spec.version.value == 1
    assert prediction.Predict(_predict_request(label="stable")).model_spec.version.value == 1
    assert prediction.Predict(_predict_request(label="canary")).model_spec.version.value == 2


def test_predict_accepts_tensor_content_and_filters_outputs(stubs, expected) -> None:
    prediction, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "predict_raw"
    for key, value in RAW_INPUTS.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    assert request.inputs["history"].tensor_content  # numeric: tensor_content
    request.output_filter.append("probability")
    response = prediction.Predict(request)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probability"]).reshape(-1), expected, atol=1e-6)


def test_classify_regress_and_multi_inference(stubs, expected) -> None:
    prediction, _ = stubs
    classified = prediction.Classify(_classify_request())
    assert [[c.label for c in r.classes] for r in classified.result.classifications] == [["0", "1"]] * 3
    np.testing.assert_allclose([r.classes[1].score for r in classified.result.classifications], expected, atol=1e-6)

    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name, regress.model_spec.signature_name = MODEL, "regress"
    regress.input.CopyFrom(_classify_request().input)
    values = [r.value for r in prediction.Regress(regress).result.regressions]
    np.testing.assert_allclose(values, expected, atol=1e-6)

    multi = inference_pb2.MultiInferenceRequest()
    multi.input.CopyFrom(_classify_request().input)
    for signature, method in (("classify", "tensorflow/serving/classify"), ("regress", "tensorflow/serving/regress")):
        task = multi.tasks.add()
        task.model_spec.name, task.model_spec.signature_name, task.method_name = MODEL, signature, method
    results = prediction.MultiInference(multi).results
    assert len(results) == 2
    np.testing.assert_allclose([r.value for r in results[1].regression_result.regressions], expected, atol=1e-6)


def test_classify_merges_context_features(stubs, expected) -> None:
    prediction, _ = stubs
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "classify"
    shared = {k: v for k, v in ROWS[0].items() if k in ("user", "interests", "history")}
    request.input.example_list_with_context.context.CopyFrom(row_example(shared))
    request.input.example_list_with_context.examples.add().CopyFrom(row_example({"target": 13, "target_categories": ["cat_1"]}))
    score = prediction.Classify(request).result.classifications[0].classes[1].score
    assert score == pytest.approx(expected[0], abs=1e-6)


@pytest.mark.parametrize("inline", ["true", "false"])
def test_session_options_keep_the_answers(small_model: str, expected, inline: str) -> None:
    config = session_config(build_parser().parse_args([f"--inline_all_functions={inline}"]))
    servable = ServableVersion(MODEL, 1, small_model, LoadOptions(session_config=config))
    scores = servable.run("", {"examples": np.array(SERIALIZED, dtype=object)})["probability"].reshape(-1)
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_requests_over_grpc_default_4_mib_limit_are_served(stubs, expected) -> None:
    # TF Serving takes messages up to 2 GB; gRPC's own default would refuse this one (RESOURCE_EXHAUSTED).
    prediction, _ = stubs
    example = row_example(ROWS[0])
    example.features.feature["padding_the_model_ignores"].bytes_list.value.append(b"x" * (5 << 20))
    request = _predict_request()
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example.SerializeToString()], dtype=tf.string))
    assert request.ByteSize() > 5 << 20

    response = prediction.Predict(request)

    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probability"]).reshape(-1), expected[:1], atol=1e-6)


def test_model_metadata_and_status(stubs) -> None:
    prediction, models = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = prediction.GetModelMetadata(request)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def["serving_default"].inputs) == {"examples"}
    assert {"classify", "regress", "predict_raw"} <= set(signatures.signature_def)

    status = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL}))
    states = {s.version: s.state for s in status.model_version_status}
    assert states == {1: get_model_status_pb2.ModelVersionStatus.AVAILABLE, 2: get_model_status_pb2.ModelVersionStatus.AVAILABLE}


def test_tfx_tensorflow_serving_client(server) -> None:
    client = TensorFlowServingClient(server[0], MODEL)
    client.WaitUntilModelLoaded(time.time() + 30, polling_interval_sec=0.2)
    assert client._GetServingStatus() == infra_types.ModelServingStatus.READY
    client.SendRequests([_predict_request(), _classify_request()])  # raises on any failed RPC


@pytest.mark.parametrize(
    "mutate, code, message",
    [
        (lambda r: setattr(r.model_spec, "name", "nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (lambda r: r.model_spec.version.__setattr__("value", 7), grpc.StatusCode.NOT_FOUND, f"Specific({MODEL}, 7)"),
        (lambda r: setattr(r.model_spec, "signature_name", "nope"), grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found'),
        (lambda r: r.inputs["extra"].CopyFrom(tf.make_tensor_proto([1.0])), grpc.StatusCode.INVALID_ARGUMENT, "Sent extra: {extra}"),
        (lambda r: r.inputs["examples"].CopyFrom(tf.make_tensor_proto([1.0, 2.0])), grpc.StatusCode.INVALID_ARGUMENT, "string"),
        (lambda r: r.inputs["examples"].CopyFrom(tf.make_tensor_proto([[b"a"]])), grpc.StatusCode.INVALID_ARGUMENT, ""),
        (lambda r: r.inputs["examples"].CopyFrom(tf.make_tensor_proto([b"\xff garbage"])), grpc.StatusCode.INVALID_ARGUMENT, ""),
    ],
    ids=["unknown-model", "unknown-version", "unknown-signature", "extra-key", "wrong-dtype", "wrong-shape", "garbage-bytes"],
)
def test_bad_requests_get_tf_serving_status_codes_and_the_server_keeps_serving(stubs, expected, mutate, code, message) -> None:
    prediction, _ = stubs
    request = _predict_request()
    mutate(request)
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request)
    assert info.value.code() == code, info.value.details()
    assert message in info.value.details()
    np.testing.assert_allclose(tf.make_ndarray(prediction.Predict(_predict_request()).outputs["probability"]).reshape(-1), expected, atol=1e-6)


def test_a_rank_the_signature_does_not_take_is_named_with_the_input(own_server) -> None:
    """Issue 40: an ``examples`` tensor of shape [1, 1] got only "Expected serialized to be a scalar or
    vector" from inside the graph. TF Serving's own message stays first; the input follows."""
    running, _ = own_server
    request = _predict_request()
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([SERIALIZED[:1]], dtype=tf.string))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, 30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'examples' was sent with shape [1, 1], the signature 'serving_default' expects [-1]" in info.value.details(), \
        info.value.details()


def test_classify_on_a_predict_signature_without_classes_or_scores_is_invalid(stubs) -> None:
    prediction, _ = stubs
    with pytest.raises(grpc.RpcError) as info:
        prediction.Classify(_classify_request(signature=""))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_model_status_is_not_found(stubs) -> None:
    _, models = stubs
    with pytest.raises(grpc.RpcError) as info:
        models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "nope"}))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------------------- this server only


@pytest.fixture
def own_server(small_model: str, tmp_path: Path):
    base = tmp_path / MODEL
    base.mkdir()
    _copy_version(small_model, base, 1)
    import portpicker

    running = _start(f"--model_name={MODEL}", f"--model_base_path={base}", f"--rest_api_port={portpicker.pick_unused_port()}")
    yield running, base
    running.stop(grace=2)


def test_reload_config_unloads_models_left_out_and_applies_the_policy(own_server, small_model: str) -> None:
    running, base = own_server
    _copy_version(small_model, base, 2)
    client = ModelClient(f"localhost:{running.port}", MODEL)
    _wait_for(lambda: client.versions() == {1: "END", 2: "AVAILABLE"})
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(
        f'model_config_list {{ config {{ name: "renamed" base_path: "{base}" model_version_policy {{ specific {{ versions: 1 }} }} }} }}',
        config,
    )
    model_service_pb2_grpc.ModelServiceStub(client.channel).HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config))
    with pytest.raises(grpc.RpcError) as info:
        client.predict(ROWS)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    renamed = ModelClient(f"localhost:{running.port}", "renamed")
    assert renamed.versions() == {1: "AVAILABLE"}
    assert len(renamed.predict(ROWS)) == 3


def test_a_version_that_fails_to_load_is_reported_and_the_last_good_one_serves(own_server) -> None:
    running, base = own_server
    (base / "5").mkdir()
    (base / "5" / "saved_model.pb").write_bytes(b"not a SavedModel")
    client = ModelClient(f"localhost:{running.port}", MODEL)
    _wait_for(lambda: 5 in client.versions())
    status = client.models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL}))
    failed = next(s for s in status.model_version_status if s.version == 5)
    assert failed.state == get_model_status_pb2.ModelVersionStatus.END and failed.status.error_message
    assert client.versions()[1] == "AVAILABLE" and len(client.predict(ROWS)) == 3


def test_hot_swap_under_load_loses_no_request(own_server, small_model: str) -> None:
    running, base = own_server
    endpoint = f"localhost:{running.port}"
    seen: list[list[int]] = [[] for _ in range(4)]  # versions answered, per client, in order
    failures: list[str] = []
    stop = threading.Event()

    def hammer(mine: list[int]) -> None:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(endpoint))
        while not stop.is_set():
            try:
                mine.append(stub.Predict(_predict_request(), timeout=30).model_spec.version.value)
            except grpc.RpcError as e:
                failures.append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=hammer, args=(mine,)) for mine in seen]
    for t in threads:
        t.start()
    _wait_for(lambda: all(len(mine) > 5 for mine in seen))
    _copy_version(small_model, base, 2)
    _wait_for(lambda: all(mine[-1:] == [2] for mine in seen))
    counts = [len(mine) for mine in seen]
    _wait_for(lambda: all(len(mine) > n + 10 for mine, n in zip(seen, counts, strict=True)))
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    for mine in seen:
        switch = mine.index(2)
        assert set(mine[:switch]) == {1} and set(mine[switch:]) == {2}, "each client moves from 1 to 2 once, never back"
    assert ModelClient(endpoint, MODEL).versions() == {1: "END", 2: "AVAILABLE"}


def test_warmup_requests_are_replayed_at_load(small_model: str, tmp_path: Path, caplog) -> None:
    # the model carries the canary's warmup file, as a pushed one does
    assert os.path.exists(os.path.join(small_model, "assets.extra", "tf_serving_warmup_requests"))
    base = tmp_path / MODEL
    base.mkdir()
    _copy_version(small_model, base, 1)
    caplog.set_level("INFO", logger="embedpipe.serving")
    running = _start(f"--model_name={MODEL}", f"--model_base_path={base}")
    running.stop(grace=1)
    assert any("(2 warmup requests replayed)" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_rest_api(own_server, expected) -> None:
    running, _ = own_server
    url = f"http://localhost:{running.rest_port}/v1/models/{MODEL}"
    status = json.load(urllib.request.urlopen(url))
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    metadata = json.load(urllib.request.urlopen(url + "/versions/1/metadata"))
    assert "serving_default" in metadata["metadata"]["signature_def"]["signature_def"]

    import base64

    body = {"instances": [{"b64": base64.b64encode(s).decode()} for s in SERIALIZED]}
    predictions = _post(url + ":predict", body)["predictions"]
    np.testing.assert_allclose(np.array(predictions).reshape(-1), expected, atol=1e-6)
    results = _post(url + ":classify", {"signature_name": "classify", "examples": ROWS})["results"]
    np.testing.assert_allclose([r[1][1] for r in results], expected, atol=1e-6)
    with pytest.raises(urllib.error.HTTPError) as info:
        _post(f"http://localhost:{running.rest_port}/v1/models/nope:predict", body)
    assert info.value.code == 404 and "Servable not found" in json.load(info.value)["error"]
    # issue 40: a nested list for an id feature got only "ConcatOp : Ranks of all input tensors should match"
    nested = {key: np.asarray(value).tolist() for key, value in RAW_INPUTS.items()}
    nested["target"] = [[t] for t in nested["target"]]
    with pytest.raises(urllib.error.HTTPError) as info:
        _post(url + ":predict", {"signature_name": "predict_raw", "inputs": nested})
    error = json.load(info.value)["error"]
    assert info.value.code == 400 and "input 'target' was sent with shape" in error and "expects [-1]" in error, error


def test_batching_answers_concurrent_clients_correctly(small_model: str, tmp_path: Path, expected) -> None:
    base = tmp_path / MODEL
    base.mkdir()
    _copy_version(small_model, base, 1)
    running = _start(f"--model_name={MODEL}", f"--model_base_path={base}", "--enable_batching",
                     "--max_batch_size=8", "--batch_timeout_micros=5000")
    try:
        endpoint = f"localhost:{running.port}"
        results: dict[int, float] = {}
        before = _batch_sizes(running)  # the warmup requests went through the batcher too

        def one(i: int) -> None:
            results[i] = ModelClient(endpoint, MODEL).predict([ROWS[i % 3]])[0]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        np.testing.assert_allclose([results[i] for i in range(24)], [expected[i % 3] for i in range(24)], atol=1e-6)
        # ... and were batched: the batch-size counter (TF's processed_batch_size_v2) saw every row, in fewer batches than calls
        after = _batch_sizes(running)
        batches = {size: n - before.get(size, 0) for size, n in after.items() if n > before.get(size, 0)}
        assert sum(size * n for size, n in batches.items()) == 24 and max(batches) > 1, batches
    finally:
        running.stop(grace=2)


def test_health_service(own_server) -> None:
    running, _ = own_server
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"localhost:{running.port}"))
    for service in ("", "tensorflow.serving.PredictionService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING


def test_embedpipe_serve_and_predict_cli_then_sigterm_exits_zero(small_model: str, tmp_path: Path, expected) -> None:
    import portpicker

    base = tmp_path / MODEL
    base.mkdir()
    _copy_version(small_model, base, 1)
    port = portpicker.pick_unused_port()
    embedpipe = str(Path(sys.executable).with_name("embedpipe"))
    server = subprocess.Popen([embedpipe, "serve", f"--port={port}", f"--model_name={MODEL}", f"--model_base_path={base}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        TensorFlowServingClient(f"localhost:{port}", MODEL).WaitUntilModelLoaded(time.time() + 120, 0.5)
        rows = tmp_path / "rows.jsonl"
        rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        out = subprocess.run([embedpipe, "predict", "--server", f"localhost:{port}", "--model", MODEL, "--input", str(rows)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        np.testing.assert_allclose([float(x) for x in out.stdout.split()], expected, atol=1e-5)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert "draining" in server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()


def _batch_sizes(running) -> dict[int, int]:
    """batch size -> batches run, from the Prometheus text of TF's processed_batch_size_v2 counter."""
    metric = ":tensorflow:serving:batching:processed_batch_size_v2{"
    return {int(line.split('batch_size="')[1].split('"')[0]): int(float(line.split()[-1]))
            for line in running.handlers.metrics.render().splitlines() if line.startswith(metric)}


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))
