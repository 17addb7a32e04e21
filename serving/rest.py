"""TF Serving's REST API (``--rest_api_port``) over the same handlers as gRPC.

GET  /v1/models/M[/versions/V | /labels/L]            model status
GET  /v1/models/M[...]/metadata                        signature_def metadata
POST /v1/models/M[...]:predict   {"instances": [...]} (row) or {"inputs": ...} (columnar)
POST /v1/models/M[...]:classify  {"examples": [...], "context": {...}}
POST /v1/models/M[...]:regress   same body
Binary values travel as {"b64": "..."}; errors as {"error": "..."}.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving.errors import ServingError, invalid
from serving.handlers import RequestHandlers
from serving.tensors import fill_tensor_proto

_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata)|:(predict|classify|regress))?$")
_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
}
_STATE_NAMES = {v: k for k, v in get_model_status_pb2.ModelVersionStatus.State.items()}


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, np.ndarray):
        return [_encode(v) for v in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _feature(value: Any) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    values = [_decode(v) for v in values]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v if isinstance(v, bytes) else str(v).encode() for v in values]))


def _example(features: dict[str, Any]) -> tf.train.Example:
    if not isinstance(features, dict):
        raise invalid("Each example must be a JSON object of feature name -> value(s).")
    # an empty list has no type; leaving it out parses as the same empty sequence
    return tf.train.Example(features=tf.train.Features(feature={k: _feature(v) for k, v in features.items() if v != []}))


def _input(body: dict[str, Any]) -> input_pb2.Input:
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("Missing 'examples' key (a non-empty list).")
    request_input = input_pb2.Input()
    if "context" in body:
        target = request_input.example_list_with_context
        target.context.CopyFrom(_example(body["context"]))
    else:
        target = request_input.example_list
    for e in examples:
        target.examples.add().CopyFrom(_example(e))
    return request_input


class RestApi:
    """Turns REST calls into handler calls."""

    def __init__(self, handlers: RequestHandlers) -> None:
        self.h = handlers

    def _spec(self, name: str, version: str | None, label: str | None, signature: str = "") -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=name, signature_name=signature)
        if version:
            spec.version.value = int(version)
        elif label:
            spec.version_label = label
        return spec

    def get(self, path: str) -> dict[str, Any]:
        """Status or metadata."""
        m = _PATH.match(path)
        if not m or m.group(5):
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: GET {path}")
        name, version, label, metadata, _ = m.groups()
        spec = self._spec(name, version, label)
        if metadata:
            response = self.h.get_model_metadata(get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"]))
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signature_map)
            return {
                "model_spec": {"name": name, "signature_name": "", "version": str(response.model_spec.version.value)},
                # As TF Serving prints it (JsonPrintOptions always_print_primitive_fields and proto
                # field names): signature_def, tensor_shape, method_name, with default values.
                "metadata": {"signature_def": json_format.MessageToDict(
                    signature_map, preserving_proto_field_name=True, including_default_value_fields=True)},
            }
        status = self.h.get_model_status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec))
        return {
            "model_version_status": [
                {
                    "version": str(s.version),
                    "state": _STATE_NAMES.get(s.state, str(s.state)),
                    "status": {"error_code": "OK" if not s.status.error_code else "INTERNAL", "error_message": s.status.error_message},
                }
                for s in status.model_version_status
            ]
        }

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """:predict, :classify or :regress."""
        m = _PATH.match(path)
        if not m or not m.group(5):
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: POST {path}")
        name, version, label, _, verb = m.groups()
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        spec = self._spec(name, version, label, body.get("signature_name", ""))
        if verb == "classify":
            response = self.h.classify(classification_pb2.ClassificationRequest(model_spec=spec, input=_input(body)))
            return {"results": [[[c.label, c.score] for c in row.classes] for row in response.result.classifications]}
        if verb == "regress":
            response = self.h.regress(regression_pb2.RegressionRequest(model_spec=spec, input=_input(body)))
            return {"results": [r.value for r in response.result.regressions]}
        return self._predict(spec, body)

    def _predict(self, spec: model_pb2.ModelSpec, body: dict[str, Any]) -> dict[str, Any]:
        servable = self.h.lookup(spec)
        specs = servable.input_specs(spec.signature_name)
        if ("instances" in body) == ("inputs" in body):
            raise invalid("JSON object: must have exactly one of 'instances' (row format) or 'inputs' (columnar format).")
        row_format = "instances" in body
        columns: dict[str, Any]
        if row_format:
            instances = body["instances"]
            if not isinstance(instances, list) or not instances:
                raise invalid("'instances' must be a non-empty list.")
            if all(isinstance(i, dict) and not set(i) == {"b64"} for i in instances):
                columns = {k: [i.get(k) for i in instances] for k in instances[0]}
            elif len(specs) == 1:
                columns = {next(iter(specs)): instances}
            else:
                raise invalid(f"The signature has several inputs {sorted(specs)}; give each instance as an object.")
        else:
            inputs = body["inputs"]
            columns = inputs if isinstance(inputs, dict) else {next(iter(specs)): inputs}
        request = predict_pb2.PredictRequest(model_spec=spec)
        for key, values in columns.items():
            dtype = specs[key].dtype if key in specs else None
            array = np.array(_decode(values), dtype=object if dtype == tf.string else (dtype.as_numpy_dtype if dtype else None))
            fill_tensor_proto(request.inputs[key], array)
        response = self.h.predict(request, servable)
        outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        if not row_format:
            only = len(outputs) == 1
            return {"outputs": _encode(next(iter(outputs.values()))) if only else {k: _encode(v) for k, v in outputs.items()}}
        rows = len(next(iter(outputs.values())))
        if len(outputs) == 1:
            return {"predictions": _encode(next(iter(outputs.values())))}
        return {"predictions": [{k: _encode(v[i]) for k, v in outputs.items()} for i in range(rows)]}


# Bounds of the REST transport (the gRPC one has TF Serving's 2 GB message limit):
MAX_BODY_BYTES = 2**28  # 256 MiB of JSON; a larger Content-Length is answered 413 before reading
READ_TIMEOUT_SECONDS = 60  # per socket read: a connection that stops sending is closed
MAX_CONNECTIONS = 128  # connections served at once (a thread each); more are closed at once
LISTEN_BACKLOG = 128  # http.server's default is 5


class _BoundedHTTPServer(ThreadingHTTPServer):
    """http.server's threading server with a bounded number of connection threads and a real
    backlog: 300 half-open connections made 323 threads before."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # at capacity: close rather than queue a thread
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _TlsHTTPServer(_BoundedHTTPServer):
    """HTTPS: each accepted connection is wrapped in TLS in its own handler thread, so a slow or
    failed handshake does not hold up the accept loop."""

    def __init__(self, address, handler, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):  # no certificate, a plain-HTTP client: drop the connection
            return
        super().finish_request(request, client_address)


def make_rest_server(handlers: RequestHandlers, port: int, host: str = "0.0.0.0", cors: bool = False,
                     metrics_path: str | None = None, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """The REST API on ``host:port``, served from a daemon thread. ``cors``: answer with TF Serving's
    CORS headers (``--rest_api_enable_cors_support``) and to OPTIONS preflights; ``metrics_path``:
    where Prometheus scrapes (``--monitoring_config_file``), None = not served; ``tls``: serve HTTPS
    (``--ssl_config_file``), the handshake done per connection in its own thread."""
    api = RestApi(handlers)

    class Handler(BaseHTTPRequestHandler):
        def _cors_headers(self) -> None:
            if cors:
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "POST, GET")
                self.send_header("Access-Control-Allow-Headers", "Content-Type")

        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self._cors_headers()
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:  # noqa: N802
            self.send_response(204 if cors else 405)
            self._cors_headers()
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _run(self, call) -> None:
            started, status = time.perf_counter(), "OK"
            try:
                self._reply(200, call())
            except ServingError as e:
                status = e.code.name
                self._reply(_HTTP.get(e.code, 500), {"error": e.message})
            except (ValueError, TypeError, KeyError) as e:
                status = "INVALID_ARGUMENT"
                self._reply(400, {"error": f"{type(e).__name__}: {e}"})
            finally:
                m = _PATH.match(self.path)
                model, api_name = (m.group(1), m.group(5) or ("get_model_metadata" if m.group(4) else "get_model_status")) if m else ("", "")
                handlers.metrics.request(model, api_name, "REST", status, time.perf_counter() - started)

        def do_GET(self) -> None:  # noqa: N802
            if metrics_path and self.path == metrics_path:
                data = handlers.metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self._run(lambda: api.get(self.path))

        timeout = READ_TIMEOUT_SECONDS  # a client that stops sending is dropped, its thread freed

        def do_POST(self) -> None:  # noqa: N802
            declared = self.headers.get("Content-Length", "0").strip()
            if not declared.isdigit():
                self._reply(400, {"error": f"Content-Length {declared!r} is not a number of bytes"})
                self.close_connection = True
                return
            length = int(declared)
            if length > MAX_BODY_BYTES:  # refused before reading (or allocating) any of it
                self._reply(413, {"error": f"the request body of {length} bytes is larger than {MAX_BODY_BYTES} bytes"})
                self.close_connection = True
                return

            def call() -> dict[str, Any]:
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except json.JSONDecodeError as e:
                    raise invalid(f"JSON Parse error: {e}") from e
                return api.post(self.path, body)

            self._run(call)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- quiet access log
            pass

    server = _TlsHTTPServer((host, port), Handler, tls) if tls else _BoundedHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="embedpipe-rest", daemon=True).start()
    return server
