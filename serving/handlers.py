"""TF Serving's request semantics, independent of the transport (gRPC and REST use them).

Every function takes a request proto and returns the response proto, or raises ServingError with
the status code and message TF Serving would give.
"""

from __future__ import annotations

import numpy as np
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving.batching import Batcher
from serving.errors import invalid
from serving.memory import MemoryTrimmer
from serving.model_manager import ModelManager
from serving.monitoring import Metrics
from serving.request_log import RequestLogs
from serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, PredictCall, ServableVersion, examples_from_input
from serving.tensors import DEFAULT_MAX_ELEMENTS, fill_tensor_proto


class RequestHandlers:
    """Predict / Classify / Regress / MultiInference / metadata / status over a ModelManager."""

    def __init__(self, manager: ModelManager, batcher: Batcher | None = None, metrics: Metrics | None = None,
                 max_request_elements: int = DEFAULT_MAX_ELEMENTS, request_logs: RequestLogs | None = None) -> None:
        """``request_logs``: where sampled successful calls are logged (None: nothing is logged)."""
        self.manager = manager
        self.batcher = batcher
        self.metrics = metrics or Metrics()
        self.max_request_elements = max_request_elements
        self.memory = MemoryTrimmer()
        self.request_logs = request_logs

    def _logged(self, request, response):
        """``response``, after offering the call to the request log."""
        if self.request_logs is not None:
            self.request_logs.log(request, response)
        return response

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def version_choice(spec: model_pb2.ModelSpec) -> tuple[int | None, str | None]:
        """(version, label) a ModelSpec asks for; both None = the latest."""
        version = spec.version.value if spec.HasField("version") else None
        label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
        return version, label

    def lookup(self, spec: model_pb2.ModelSpec) -> ServableVersion:
        """The loaded version a ModelSpec names."""
        return self.manager.get(spec.name, *self.version_choice(spec))

    @staticmethod
    def _answer_spec(target: model_pb2.ModelSpec, servable: ServableVersion, signature: str) -> None:
        target.name = servable.name
        target.version.value = servable.version
        target.signature_name = signature

    # ------------------------------------------------------------------ RPCs
    def predict(self, request: predict_pb2.PredictRequest, servable: ServableVersion | None = None) -> predict_pb2.PredictResponse:
        """PredictionService.Predict (blocks the calling thread; see ``predict_async`` for the event loop)."""
        call = self.prepare_predict(request, servable)
        if self.batcher is not None:
            outputs = self.batcher.run(*call)
        else:
            outputs = call.run_alone()
        return self._logged(request, self.predict_response(call, outputs))

    async def predict_async(self, request: predict_pb2.PredictRequest, log: bool = True) -> predict_pb2.PredictResponse:
        """Predict on the gRPC event loop: batched requests wait without holding a thread; an
        unbatched request runs right here (the TF call releases the GIL but not the loop).
        ``log=False``: the caller logs the call itself (gRPC, from the wire bytes)."""
        call = self.prepare_predict(request)
        if self.batcher is not None:
            outputs = await self.batcher.run_async(*call)
        else:
            outputs = call.run_alone()
        response = self.predict_response(call, outputs)
        return self._logged(request, response) if log else response

    def prepare_predict(self, request: predict_pb2.PredictRequest, servable: ServableVersion | None = None) -> PredictCall:
        """The version, signature, decoded inputs and output filter a PredictRequest names."""
        return PredictCall.of(request, servable or self.lookup(request.model_spec), self.max_request_elements)

    def predict_response(self, call: PredictCall, outputs: dict[str, np.ndarray]) -> predict_pb2.PredictResponse:
        """The PredictResponse for a call's outputs."""
        response = predict_pb2.PredictResponse()
        self._answer_spec(response.model_spec, call.servable, call.signature)
        for key, value in outputs.items():
            fill_tensor_proto(response.outputs[key], value)
        return response

    def _classification_result(self, servable: ServableVersion, signature: str, request_input) -> classification_pb2.ClassificationResult:
        serialized = examples_from_input(request_input)
        classes, scores = servable.classify(signature, serialized)
        result = classification_pb2.ClassificationResult()
        for i in range(len(serialized)):
            row = result.classifications.add()
            k = (classes if classes is not None else scores).shape[1]
            for j in range(k):
                c = row.classes.add()
                if classes is not None:
                    label = classes[i, j]
                    c.label = label.decode() if isinstance(label, bytes) else str(label)
                if scores is not None:
                    c.score = float(scores[i, j])
        return result

    def _regression_result(self, servable: ServableVersion, signature: str, request_input) -> regression_pb2.RegressionResult:
        values = servable.regress(signature, examples_from_input(request_input))
        result = regression_pb2.RegressionResult()
        for v in values:
            result.regressions.add().value = float(v)
        return result

    def _single_input_rpc(self, request, response, result_of) -> object:
        """Classify and Regress: look up, compute the result on ``request.input``, answer the spec."""
        servable = self.lookup(request.model_spec)
        signature, _ = servable.signature(request.model_spec.signature_name)
        response.result.CopyFrom(result_of(servable, signature, request.input))
        self._answer_spec(response.model_spec, servable, signature)
        return self._logged(request, response)

    def classify(self, request: classification_pb2.ClassificationRequest) -> classification_pb2.ClassificationResponse:
        """PredictionService.Classify (works on predict-method signatures with classes/scores)."""
        return self._single_input_rpc(request, classification_pb2.ClassificationResponse(), self._classification_result)

    def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        """PredictionService.Regress (a signature with one string input and an ``outputs`` output)."""
        return self._single_input_rpc(request, regression_pb2.RegressionResponse(), self._regression_result)

    def multi_inference(self, request: inference_pb2.MultiInferenceRequest) -> inference_pb2.MultiInferenceResponse:
        """PredictionService.MultiInference: classify/regress tasks on one model, one input."""
        if not request.tasks:
            raise invalid("Found no tasks in MultiInferenceRequest.")
        names = {t.model_spec.name for t in request.tasks}
        if len(names) > 1:
            raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        signatures = [t.model_spec.signature_name or "serving_default" for t in request.tasks]
        if len(set(signatures)) != len(signatures):
            raise invalid("Duplicate evaluation of signature: " + next(s for s in signatures if signatures.count(s) > 1))
        response = inference_pb2.MultiInferenceResponse()
        servable = self.lookup(request.tasks[0].model_spec)
        for task in request.tasks:
            signature, _ = servable.signature(task.model_spec.signature_name)
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                result.classification_result.CopyFrom(self._classification_result(servable, signature, request.input))
            elif task.method_name == REGRESS_METHOD:
                result.regression_result.CopyFrom(self._regression_result(servable, signature, request.input))
            else:
                raise invalid(f"Unsupported signature method_name: {task.method_name}")
            self._answer_spec(result.model_spec, servable, signature)
        return self._logged(request, response)

    def get_model_metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """PredictionService.GetModelMetadata: only ``signature_def``."""
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise invalid(f"Metadata field {field} is not supported")
        servable = self.lookup(request.model_spec)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].CopyFrom(packed)
        return response

    def get_model_status(self, request: get_model_status_pb2.GetModelStatusRequest) -> get_model_status_pb2.GetModelStatusResponse:
        """ModelService.GetModelStatus."""
        spec = request.model_spec
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, status in self.manager.status(spec.name, *self.version_choice(spec)):
            entry = response.model_version_status.add()
            entry.version, entry.state = number, status.state
            if status.error:
                entry.status.error_code = 13  # INTERNAL: the load failed
                entry.status.error_message = status.error
        return response
