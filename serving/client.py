"""A small client for a TF Serving-compatible server: raw feature dicts in, scores out.

    client = ModelClient("localhost:8500", "movielens")
    client.predict([{"user": 7, "history": [1, 2], "target": 3, ...}])   # -> [0.73]

Rows become tf.Examples (ints -> int64_list, numbers -> float_list, text -> bytes_list; lists
stay lists), sent with Predict on ``serving_default`` (input ``examples``, output
``probability``) or with Classify on ``classify``. Works against this project's server and the
real tensorflow_model_server alike: it only uses the stock ``tensorflow_serving`` stubs.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from records.raw_records import ColumnSpec, record_to_example
from serving.grpc_options import GRPC_OPTIONS


def rows_to_examples(rows: Iterable[Mapping[str, Any]], specs: Mapping[str, ColumnSpec] | None = None) -> list[bytes]:
    """Serialized tf.Examples for raw rows; ``specs`` (from the config) pins dtypes when given.

    Without specs an empty list has no type, so it is left out (a missing feature parses as an
    empty sequence, which is what an empty list means).
    """
    if specs is None:
        rows = ({k: v for k, v in row.items() if v != []} for row in rows)
    return [record_to_example(row, specs or {}, f"row {i}").SerializeToString() for i, row in enumerate(rows)]


class ModelClient:
    """Predict / Classify / status calls for one model over one channel."""

    def __init__(self, target: str, model_name: str, specs: Mapping[str, ColumnSpec] | None = None, timeout: float = 30.0) -> None:
        self.channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)
        self.model_name = model_name
        self.specs = specs
        self.timeout = timeout
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def predict(self, rows: list[Mapping[str, Any]], signature: str = "serving_default", version: int | None = None) -> list[float]:
        """One probability per row through Predict."""
        return self.predict_serialized(rows_to_examples(rows, self.specs), signature, version)

    def predict_serialized(self, serialized: list[bytes], signature: str = "serving_default", version: int | None = None) -> list[float]:
        """One probability per serialized tf.Example through Predict."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = self.model_name, signature
        if version is not None:
            request.model_spec.version.value = version
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(serialized, dtype=tf.string))
        response = self.prediction.Predict(request, timeout=self.timeout)
        return tf.make_ndarray(response.outputs["probability"]).reshape(-1).tolist()

    def classify(self, rows: list[Mapping[str, Any]], signature: str = "classify") -> list[float]:
        """The score of class "1" per row through Classify."""
        return self.classify_serialized(rows_to_examples(rows, self.specs), signature)

    def classify_serialized(self, serialized: list[bytes], signature: str = "classify") -> list[float]:
        """The score of class "1" per serialized tf.Example through Classify."""
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name, request.model_spec.signature_name = self.model_name, signature
        for example in serialized:
            request.input.example_list.examples.add().ParseFromString(example)
        response = self.prediction.Classify(request, timeout=self.timeout)
        return [next(c.score for c in row.classes if c.label == "1") for row in response.result.classifications]

    def versions(self) -> dict[int, str]:
        """Version -> state name, from GetModelStatus."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        response = self.models.GetModelStatus(request, timeout=self.timeout)
        names = get_model_status_pb2.ModelVersionStatus.State.Name
        return {s.version: names(s.state) for s in response.model_version_status}

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()
