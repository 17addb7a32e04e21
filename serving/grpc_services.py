"""gRPC PredictionService and ModelService servicers (grpc.aio) over RequestHandlers.

Predict runs on the event loop (``RequestHandlers.predict_async``): no thread hand-off per
request, and batched requests wait as futures. The other RPCs are rarer and may block (a model
reload loads SavedModels), so they run on a thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    regression_pb2,
)

from serving.errors import ServingError
from serving.handlers import RequestHandlers
from serving.reload_policy import ReloadPolicy

log = logging.getLogger("embedpipe.serving")


class _Servicer:
    def __init__(self, handlers: RequestHandlers, executor: Executor) -> None:
        self.h = handlers
        self._executor = executor

    async def _answer(self, context: grpc.aio.ServicerContext, request: Any, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call``; a ServingError becomes its status; count the request (serving/monitoring.py)."""
        started, status = time.perf_counter(), grpc.StatusCode.OK
        try:
            return await call()
        except ServingError as e:
            status = e.code
            await context.abort(e.code, e.message)
        except Exception as e:  # never let a bad request take the server down
            status = grpc.StatusCode.INTERNAL
            log.exception("request failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
        finally:
            model = request.model_spec.name if hasattr(request, "model_spec") else ""
            self.h.metrics.request(model, _API[type(request).__name__], "GRPC", status.name, time.perf_counter() - started)
            self.h.memory.after_request(request.ByteSize())

    async def _in_pool(self, context: grpc.aio.ServicerContext, fn: Callable[[Any], Any], request: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await self._answer(context, request, lambda: loop.run_in_executor(self._executor, fn, request))


# request message -> the API label of TF Serving's request_latency metric
_API = {"PredictRequest": "predict", "ClassificationRequest": "classify", "RegressionRequest": "regress",
        "MultiInferenceRequest": "multi_inference", "GetModelMetadataRequest": "get_model_metadata",
        "GetModelStatusRequest": "get_model_status", "ReloadConfigRequest": "reload_config"}


class PredictionService(_Servicer):
    """tensorflow.serving.PredictionService (registered by ``prediction_service_handler``; not derived
    from the generated servicer, whose stubs would answer a method missing here with UNIMPLEMENTED)."""

    async def Predict(self, request, context):  # noqa: N802 -- gRPC method names
        return await self._answer(context, request, lambda: self.h.predict_async(request))

    async def predict_wire(self, request_bytes: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Predict from and to wire bytes (``prediction_service_handler``): a logged call's record is made of
        the bytes received and sent, not of the messages copied and serialized again."""
        request = predict_pb2.PredictRequest.FromString(request_bytes)
        response = await self._answer(context, request, lambda: self.h.predict_async(request, log=False))
        response_bytes = response.SerializeToString()
        logs = self.h.request_logs
        logger = logs.logger(request.model_spec.name) if logs is not None else None
        if logger is not None:
            logger.log_predict_bytes(request_bytes, response_bytes, response.model_spec.SerializeToString())
        return response_bytes

    async def Classify(self, request, context):  # noqa: N802
        return await self._in_pool(context, self.h.classify, request)

    async def Regress(self, request, context):  # noqa: N802
        return await self._in_pool(context, self.h.regress, request)

    async def MultiInference(self, request, context):  # noqa: N802
        return await self._in_pool(context, self.h.multi_inference, request)

    async def GetModelMetadata(self, request, context):  # noqa: N802
        return await self._in_pool(context, self.h.get_model_metadata, request)


def prediction_service_handler(service: PredictionService) -> grpc.GenericRpcHandler:
    """tensorflow.serving.PredictionService's methods, as the generated ``add_..._to_server`` registers
    them, except Predict, which takes and returns bytes (``predict_wire`` parses and serializes).

    Why: logging every call built and serialized a PredictionLog from the messages on the writer
    thread, 23 us a call of the GIL the request threads need; 32 batched clients lost 9.6-12 % of
    their throughput (bench/RESULTS.md, "Request logging's cost to serving")."""
    def unary(method: Callable, request_class: Any, response_class: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request_class.FromString,
                                                   response_serializer=response_class.SerializeToString)

    return grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {
        "Predict": grpc.unary_unary_rpc_method_handler(service.predict_wire),
        "Classify": unary(service.Classify, classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse),
        "Regress": unary(service.Regress, regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
        "MultiInference": unary(service.MultiInference, inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse),
        "GetModelMetadata": unary(service.GetModelMetadata, get_model_metadata_pb2.GetModelMetadataRequest,
                                  get_model_metadata_pb2.GetModelMetadataResponse),
    })


class ModelService(_Servicer, model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService; reloads only as ``reload_policy`` allows (serving/reload_policy.py)."""

    def __init__(self, handlers: RequestHandlers, executor: Executor, reload_policy: ReloadPolicy) -> None:
        super().__init__(handlers, executor)
        self.reload_policy = reload_policy

    async def GetModelStatus(self, request, context):  # noqa: N802
        return await self._in_pool(context, self.h.get_model_status, request)

    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        # Every reload is logged with the client that asked, accepted or refused: it swaps the served
        # models for every client (docs/SERVING.md says how to restrict who may call it).
        peer = context.peer()
        models = ", ".join(f"{m.name}={m.base_path}" for m in request.config.model_config_list.config) or "no models"

        def reload(request: model_management_pb2.ReloadConfigRequest) -> model_management_pb2.ReloadConfigResponse:
            try:
                self.reload_policy.check(request.config)
            except ServingError as e:
                log.warning("model config reload from %s refused (%s): %s", peer, models, e)
                raise
            self.h.manager.reload(request.config)
            log.info("model config reload from %s applied: %s", peer, models)
            return model_management_pb2.ReloadConfigResponse()  # status left empty = OK

        return await self._in_pool(context, reload, request)
