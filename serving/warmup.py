"""Warmup: replay a version's ``assets.extra/tf_serving_warmup_requests`` when it loads, before it
serves (TF Serving's servables/tensorflow/saved_model_warmup). The requests run straight against
the loaded version (through the batcher when batching is on, as TF Serving's batching session),
not through the request handlers: a version is warm before any handler can reach it.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.batching import Batcher
from serving.errors import invalid
from serving.servable import WARMUP_FILE, PredictCall, ServableVersion, examples_from_input
from serving.tensors import DEFAULT_MAX_ELEMENTS

MAX_WARMUP_RECORDS = 1000  # TF Serving's kMaxNumRecords in saved_model_warmup_util


def replay_warmup(servable: ServableVersion, iterations: int = 1, batcher: Batcher | None = None,
                  max_request_elements: int = DEFAULT_MAX_ELEMENTS) -> int:
    """Replay each warmup record ``iterations`` times (``--num_request_iterations_for_warmup``);
    the number of records replayed (0 without a warmup file)."""
    path = os.path.join(servable.path, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for _ in range(max(1, iterations)):
            _replay(servable, log, batcher, max_request_elements)
        count += 1
    return count


def _replay(servable: ServableVersion, log: prediction_log_pb2.PredictionLog, batcher: Batcher | None, max_elements: int) -> None:
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        _predict(servable, log.predict_log.request, batcher, max_elements)
    elif kind == "classify_log":
        r = log.classify_log.request
        servable.classify(servable.signature(r.model_spec.signature_name)[0], examples_from_input(r.input))
    elif kind == "regress_log":
        r = log.regress_log.request
        servable.regress(servable.signature(r.model_spec.signature_name)[0], examples_from_input(r.input))
    else:
        raise invalid(f"Unsupported log_type for warmup: {kind}")


def _predict(servable: ServableVersion, request: predict_pb2.PredictRequest, batcher: Batcher | None, max_elements: int) -> None:
    call = PredictCall.of(request, servable, max_elements)
    if batcher is not None:
        batcher.run(*call)
    else:
        call.run_alone()
