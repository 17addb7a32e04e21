"""Cheap requests that would cost a lot: refused before anything large is allocated or run."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import rest_server
from serving.server import build_parser, start_server
from tests.helpers.tfs_models import example, write_half_plus

pytestmark = pytest.mark.serving

MODEL = "half_plus_two"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import portpicker

    monkeypatch.setattr(rest_server, "READ_TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(rest_server, "MAX_CONNECTIONS", 4)
    write_half_plus(str(tmp_path / MODEL))
    running = start_server(build_parser().parse_args(
        ["--port=0", f"--rest_api_port={portpicker.pick_unused_port()}", f"--model_name={MODEL}", f"--model_base_path={tmp_path / MODEL}"]))
    yield running
    running.stop(grace=1)


def _predict(running, request: predict_pb2.PredictRequest):
    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"localhost:{running.port}")).Predict(request, 30)


def _request(signature: str, key: str, dtype, values: list, dims: list[int]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, signature
    tensor = request.inputs[key]
    tensor.dtype = dtype.as_datatype_enum
    (tensor.string_val if dtype == tf.string else tensor.float_val).extend(values)
    for size in dims:
        tensor.tensor_shape.dim.add().size = size
    return request


def test_a_tiny_request_declaring_a_huge_tensor_is_refused_at_once(server) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        _predict(server, _request("serving_default", "x", tf.float32, [1.0], [2**28]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "declares 268435456 elements" in e.value.details()
    assert time.monotonic() - started < 5  # was 6.4 s and 1 GB before the answer


def test_one_example_repeated_to_a_million_rows_is_refused(server) -> None:
    serialized = example(2.0).SerializeToString()
    with pytest.raises(grpc.RpcError) as e:
        _predict(server, _request("regress_x_to_y", "inputs", tf.string, [serialized], [2**20]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "by repeating the last one is refused" in e.value.details()


def test_tensorflows_own_repetition_rule_still_holds_for_small_tensors(server) -> None:
    response = _predict(server, _request("serving_default", "x", tf.float32, [2.0], [4, 1]))
    assert list(response.outputs["y"].float_val) == [3.0] * 4


def _raw_http(running, data: bytes) -> bytes:
    with socket.create_connection(("localhost", running.rest_port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("declared, status", [("abc", b"400"), ("100000000000", b"413")])
def test_a_bad_or_huge_content_length_gets_an_http_answer(server, declared: str, status: bytes) -> None:
    answer = _raw_http(server, f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 " + status) or answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b'"error"' in answer


def test_a_client_that_stops_sending_is_dropped(server) -> None:
    with socket.create_connection(("localhost", server.rest_port), timeout=10) as s:
        s.sendall(b"POST /v1/models/x:predict HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        started = time.monotonic()
        assert s.recv(1024) == b""  # closed by the server after its read timeout (1 s here)
        assert time.monotonic() - started < 8


def test_a_client_that_stops_sending_its_body_is_dropped(server) -> None:
    with socket.create_connection(("localhost", server.rest_port), timeout=10) as s:
        s.sendall(f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
        started = time.monotonic()
        assert s.recv(1024) == b""  # 1 of 100 bytes sent: closed after the body timeout (1 s here)
        assert time.monotonic() - started < 8


def test_idle_connections_take_no_thread_and_past_the_bound_are_closed(server) -> None:
    before = threading.active_count()
    sockets = [socket.create_connection(("localhost", server.rest_port), timeout=10) for _ in range(20)]
    try:
        time.sleep(0.5)
        assert threading.active_count() == before  # connections are coroutines on the event loop
        closed = 0
        for s in sockets[4:]:  # MAX_CONNECTIONS is 4 here: the 16 others were closed at once
            s.settimeout(2)
            closed += s.recv(1) == b""
        assert closed == 16
    finally:
        for s in sockets:
            s.close()
    time.sleep(0.2)  # once they are closed, new connections are served again
    answer = _raw_http(server, f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200") and b"AVAILABLE" in answer


def test_a_rest_call_past_its_deadline_is_answered_504(tmp_path: Path) -> None:
    import json
    import urllib.error
    import urllib.request

    import portpicker

    write_half_plus(str(tmp_path / MODEL))
    running = start_server(build_parser().parse_args(
        ["--port=0", f"--rest_api_port={portpicker.pick_unused_port()}", "--rest_api_timeout_in_ms=200",
         "--rest_api_num_threads=1", f"--model_name={MODEL}", f"--model_base_path={tmp_path / MODEL}"]))
    try:
        servable = running.manager.get(MODEL, None, None)
        slow_run = servable.run

        def run_slowly(*args, **kwargs):
            time.sleep(1)
            return slow_run(*args, **kwargs)

        servable.run = run_slowly  # the model itself takes 1 s; the deadline is 200 ms
        url = f"http://localhost:{running.rest_port}/v1/models/{MODEL}:predict"
        request = urllib.request.Request(url, json.dumps({"instances": [1.0]}).encode(), {"Content-Type": "application/json"})
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        assert e.value.code == 504 and "--rest_api_timeout_in_ms" in json.loads(e.value.read())["error"]
        assert time.monotonic() - started < 0.9
        servable.run = slow_run
        time.sleep(1)  # the abandoned call finishes in its thread; the next one is served
        assert json.loads(urllib.request.urlopen(request, timeout=10).read()) == {"predictions": [2.5]}
    finally:
        running.stop(grace=1)


def test_memory_is_trimmed_after_a_large_request(server) -> None:
    import numpy as np

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((2**21, 1), np.float32)))  # 8 MiB
    before = server.handlers.memory.trims
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(
        f"localhost:{server.port}", options=[("grpc.max_send_message_length", 2**30), ("grpc.max_receive_message_length", 2**30)]))
    assert stub.Predict(request, 60).outputs["y"].float_val[0] == 2.5
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and server.handlers.memory.trims == before:
        time.sleep(0.05)
    assert server.handlers.memory.trims > before
