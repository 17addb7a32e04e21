"""gRPC PredictionService and ModelService servicers over RequestHandlers."""

from __future__ import annotations

import logging
from typing import Any, Callable

import grpc
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.errors import ServingError
from serving.handlers import RequestHandlers

log = logging.getLogger("embedpipe.serving")


def _answer(context: grpc.ServicerContext, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ServingError as e:
        context.abort(e.code, e.message)
    except Exception as e:  # never let a bad request take the server down
        log.exception("request failed")
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService."""

    def __init__(self, handlers: RequestHandlers) -> None:
        self.h = handlers

    def Predict(self, request, context):  # noqa: N802 -- gRPC method names
        return _answer(context, lambda: self.h.predict(request))

    def Classify(self, request, context):  # noqa: N802
        return _answer(context, lambda: self.h.classify(request))

    def Regress(self, request, context):  # noqa: N802
        return _answer(context, lambda: self.h.regress(request))

    def MultiInference(self, request, context):  # noqa: N802
        return _answer(context, lambda: self.h.multi_inference(request))

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _answer(context, lambda: self.h.get_model_metadata(request))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService."""

    def __init__(self, handlers: RequestHandlers) -> None:
        self.h = handlers

    def GetModelStatus(self, request, context):  # noqa: N802
        return _answer(context, lambda: self.h.get_model_status(request))

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        def reload() -> model_management_pb2.ReloadConfigResponse:
            self.h.manager.reload(request.config)
            return model_management_pb2.ReloadConfigResponse()  # status left empty = OK

        return _answer(context, reload)
