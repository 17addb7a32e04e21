"""TF Serving's REST API (``--rest_api_port``) over the same handlers as gRPC: JSON in, JSON out.

GET  /v1/models/M[/versions/V | /labels/L]            model status
GET  /v1/models/M[...]/metadata                        signature_def metadata
POST /v1/models/M[...]:predict   {"instances": [...]} (row) or {"inputs": ...} (columnar)
POST /v1/models/M[...]:classify  {"examples": [...], "context": {...}}
POST /v1/models/M[...]:regress   same body
Binary values travel as {"b64": "..."}; errors as {"error": "..."}. The HTTP transport (limits,
timeouts, TLS) is serving/rest_server.py.
"""

from __future__ import annotations

import base64
import re
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

from records.raw_records import fill_feature, infer_dtype
from serving.errors import ServingError, invalid
from serving.handlers import RequestHandlers
from serving.tensors import fill_tensor_proto

_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata)|:(predict|classify|regress))?$")
# gRPC status -> HTTP status, as TF Serving's http_server.cc ToHTTPStatusCode maps them
_HTTP = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status TF Serving answers for a gRPC status (500 for UNKNOWN, INTERNAL, DATA_LOSS)."""
    return _HTTP.get(code, 500)


def call_name(path: str) -> tuple[str, str]:
    """(model, API) of a REST path for the request metrics; ("", "") when it names no model."""
    m = _PATH.match(path)
    if not m:
        return "", ""
    return m.group(1), m.group(5) or ("get_model_metadata" if m.group(4) else "get_model_status")


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


def _feature(name: str, value: Any) -> tf.train.Feature:
    """A JSON value (or list) as TF Serving types it with no schema: integers, numbers, else bytes."""
    values = [_decode(v) for v in (value if isinstance(value, list) else [value])]
    dtype = infer_dtype(values)
    if dtype == "string":
        values = [v if isinstance(v, bytes) else str(v) for v in values]
    feature = tf.train.Feature()
    fill_feature(feature, values, dtype, "request", name)
    return feature


def _example(features: dict[str, Any]) -> tf.train.Example:
    if not isinstance(features, dict):
        raise invalid("Each example must be a JSON object of feature name -> value(s).")
    # an empty list has no type; leaving it out parses as the same empty sequence
    return tf.train.Example(features=tf.train.Features(feature={k: _feature(k, v) for k, v in features.items() if v != []}))


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
