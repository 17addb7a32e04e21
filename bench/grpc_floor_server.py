"""The floor under ``embedpipe serve``'s latency: the same grpc.aio stack answering Predict with a
prebuilt response, no model, no request handling beyond grpcio's own (de)serialization.

    .venv/bin/python bench/grpc_floor_server.py --port 9300

bench/serving_latency.py runs it in a subprocess next to the real server, so the report shows how much of
a request's time is grpcio's Python server itself on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.grpc_options import GRPC_OPTIONS  # noqa: E402 -- the same server options as embedpipe serve


def prebuilt_response() -> predict_pb2.PredictResponse:
    """What the synthetic model answers for one example: a [1, 1] float ``probability``."""
    response = predict_pb2.PredictResponse()
    response.model_spec.name, response.model_spec.signature_name = "bench", "serving_default"
    response.model_spec.version.value = 1
    output = response.outputs["probability"]
    output.dtype = types_pb2.DT_FLOAT
    output.tensor_shape.dim.add().size = 1
    output.tensor_shape.dim.add().size = 1
    output.float_val.append(0.5)
    return response


class FloorPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict answers the prebuilt response to anything."""

    def __init__(self) -> None:
        self.response = prebuilt_response()

    async def Predict(self, request, context):  # noqa: N802 -- gRPC method name
        return self.response


async def serve(port: int) -> None:
    """Serve until SIGTERM, with embedpipe serve's gRPC options."""
    server = grpc.aio.server(options=GRPC_OPTIONS)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(FloorPredictionService(), server)
    if server.add_insecure_port(f"0.0.0.0:{port}") == 0:
        raise SystemExit(f"cannot bind port {port}")
    await server.start()
    print(f"floor server on port {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))
