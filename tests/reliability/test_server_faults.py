"""Faults a model server meets in production, injected on purpose (docs/RELIABILITY.md lists them)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.server import build_parser, start_server
from tests.helpers.tfs_models import write_half_plus

pytestmark = pytest.mark.serving

MODEL = "half_plus_two"


@pytest.fixture
def served(tmp_path: Path):
    base = tmp_path / MODEL
    write_half_plus(str(base))
    running = start_server(build_parser().parse_args(
        ["--port=0", f"--model_name={MODEL}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=0.2"]))
    yield running, base
    running.stop(grace=1)


def _status(running) -> list:
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    return list(stub.GetModelStatus(request, 10).model_version_status)


def _predict(running) -> float:
    from tests.helpers.tfs_models import predict_x_request

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
    return stub.Predict(predict_x_request(MODEL), 10).outputs["y"].float_val[0]


def _wait_for_log(caplog, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in r.getMessage() for r in caplog.records):
            return
        time.sleep(0.1)
    raise AssertionError(f"no log record with {text!r}: {[r.getMessage() for r in caplog.records][-5:]}")


def test_a_vanished_model_directory_is_logged_and_the_loaded_version_keeps_serving(served, caplog) -> None:
    """TF Serving: 'FileSystemStoragePathSource encountered a filesystem access error: Could not find
    base path ...', and the loaded versions stay (its source does not call back on the error)."""
    running, base = served
    with caplog.at_level(logging.ERROR, logger="embedpipe.serving"):
        shutil.rmtree(base)
        _wait_for_log(caplog, f"Could not find base path {base} for servable {MODEL}")
    assert _predict(running) == 3.0
    assert [s.state for s in _status(running)] == [get_model_status_pb2.ModelVersionStatus.AVAILABLE]


def test_an_emptied_model_directory_unloads_every_version_with_a_warning(served, caplog) -> None:
    """TF Serving (servable_versions_always_present: false, its default): no versions found ->
    none aspired -> unloaded; requests then get NOT_FOUND."""
    running, base = served
    with caplog.at_level(logging.WARNING, logger="embedpipe.serving"):
        shutil.rmtree(base / "00000123")
        _wait_for_log(caplog, f"No versions of servable {MODEL} found under base path {base}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _status(running)[0].state != get_model_status_pb2.ModelVersionStatus.END:
        time.sleep(0.1)
    assert _status(running)[0].state == get_model_status_pb2.ModelVersionStatus.END
    with pytest.raises(grpc.RpcError) as e:
        _predict(running)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_both_transports_bind_the_address_they_are_given(tmp_path: Path) -> None:
    import portpicker

    from tests.reliability.test_canary_faults import _listening_addresses

    base = tmp_path / MODEL
    write_half_plus(str(base))
    rest_port = portpicker.pick_unused_port()
    running = start_server(build_parser().parse_args(
        ["--port=0", "--grpc_host=127.0.0.1", f"--rest_api_port={rest_port}", "--rest_api_host=127.0.0.1",
         f"--model_name={MODEL}", f"--model_base_path={base}"]))
    try:
        loopback = {"0100007F", "0000000000000000FFFF00000100007F"}
        assert _listening_addresses(running.port) <= loopback and _listening_addresses(running.port)
        assert _listening_addresses(rest_port) == {"0100007F"}
    finally:
        running.stop(grace=1)


def _reload(running, name: str, base_path: str) -> None:
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(f'model_config_list {{ config {{ name: "{name}" base_path: "{base_path}" model_platform: "tensorflow" }} }}',
                               model_server_config_pb2.ModelServerConfig())
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
    stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), 30)


def test_a_reload_cannot_load_a_model_from_outside_the_model_roots(served, tmp_path: Path, caplog) -> None:
    running, base = served
    elsewhere = tmp_path / "elsewhere" / "evil"
    write_half_plus(str(elsewhere), b=100.0)
    (base / "link").symlink_to(elsewhere)
    for path in (str(elsewhere), f"{base}/../elsewhere/evil", str(base / "link")):
        with caplog.at_level("WARNING", logger="embedpipe.serving"), pytest.raises(grpc.RpcError) as e:
            _reload(running, "evil", path)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "outside the allowed model roots" in e.value.details(), path
        refused = [r.getMessage() for r in caplog.records if "reload from" in r.getMessage()]  # issue 40: a refusal left no line
        assert refused and f"refused (evil={path})" in refused[-1] and "reload from ipv" in refused[-1], refused  # the peer
    assert _predict(running) == 3.0, "the served model is untouched"


def test_reloads_inside_the_roots_work_and_can_be_turned_off(tmp_path: Path, caplog) -> None:
    models = tmp_path / "models"
    write_half_plus(str(models / MODEL))
    write_half_plus(str(models / "half_plus_three"), b=3.0)
    common = ["--port=0", f"--model_name={MODEL}", f"--model_base_path={models / MODEL}"]
    running = start_server(build_parser().parse_args([*common, f"--model_reload_roots={models}"]))
    try:
        with caplog.at_level("INFO", logger="embedpipe.serving"):
            _reload(running, "half_plus_three", str(models / "half_plus_three"))  # inside the widened root
        assert any(f"applied: half_plus_three={models / 'half_plus_three'}" in r.getMessage() for r in caplog.records)
        from tests.helpers.tfs_models import predict_x_request

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
        assert stub.Predict(predict_x_request("half_plus_three"), 10).outputs["y"].float_val[0] == 4.0
    finally:
        running.stop(grace=1)
    running = start_server(build_parser().parse_args([*common, "--allow_model_config_reload=false"]))
    try:
        with pytest.raises(grpc.RpcError) as e:
            _reload(running, MODEL, str(models / MODEL))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "turned off" in e.value.details()
    finally:
        running.stop(grace=1)


def test_garbage_bytes_as_a_serialized_example_are_named_as_tf_serving_names_them(served) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    running, _ = served
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "regress_x_to_y"
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto([b"\xff\xfe\x00garbage\x80"], dtype=tf.string))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}"))
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(request, 10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("Could not parse example input")
