"""The model server process: ``embedpipe serve`` (flags named like tensorflow_model_server's).

    embedpipe serve --port=8500 --rest_api_port=8501 --model_name=M --model_base_path=/models/M
    embedpipe serve --model_config_file=models.config --enable_batching

gRPC PredictionService + ModelService + grpc.health.v1 on ``--port``, REST on ``--rest_api_port``
(0 = off). SIGTERM/SIGINT: stop taking requests, let in-flight ones finish, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import tensorflow as tf
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.batching import Batcher, BatchingParameters, parse_batching_parameters
from serving.errors import ServingError
from serving.grpc_services import ModelService, PredictionService
from serving.handlers import RequestHandlers
from serving.model_manager import ModelManager, load_config_file, single_model_config
from storage import enable_object_storage

log = logging.getLogger("embedpipe.serving")
MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving accepts messages up to INT32_MAX
GRPC_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The flags, spelled as tensorflow_model_server spells them."""
    p = argparse.ArgumentParser(prog="embedpipe serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0 picks a free one)")
    p.add_argument("--grpc_host", default="0.0.0.0")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port; 0 = no REST")
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", default="")
    p.add_argument("--model_config_file", default="", help="ModelServerConfig text proto (several models)")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0, help="0 = load once, never poll")
    p.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    p.add_argument("--batching_parameters_file", default="", help="BatchingParameters text proto")
    p.add_argument("--max_batch_size", type=int)
    p.add_argument("--batch_timeout_micros", type=int)
    p.add_argument("--num_batch_threads", type=int)
    p.add_argument("--max_enqueued_batches", type=int)
    p.add_argument("--grpc_max_threads", type=int, default=64, help="threads for the RPCs other than Predict")
    p.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0, help="threads inside one op; 0 = TensorFlow decides")
    p.add_argument(
        "--tensorflow_inter_op_parallelism", type=int, default=-1,
        help="ops run at once from a pool of this size; 0 = TensorFlow decides; -1 (default) = each request's ops run on "
        "the thread serving it, no pool hand-offs (docs/SERVING.md)",
    )
    p.add_argument(
        "--inline_all_functions", type=_bool, nargs="?", const=True, default=True,
        help="(not a TF Serving flag) let Grappler inline every function call of a signature, including the Transform "
        "layer's, which it otherwise keeps as a nested call (docs/SERVING.md); false = TensorFlow's default",
    )
    return p


@dataclass
class RunningServer:
    """A started server; ``stop`` drains it. gRPC runs on its own asyncio loop in a daemon thread."""

    grpc_server: grpc.aio.Server
    port: int
    manager: ModelManager
    handlers: RequestHandlers
    health: health.aio.HealthServicer
    loop: asyncio.AbstractEventLoop
    executor: futures.ThreadPoolExecutor
    rest_server: object | None = None
    rest_port: int = 0
    batcher: Batcher | None = None

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new requests, finish in-flight ones (up to ``grace`` s), stop polling."""
        self._on_loop(self.health.enter_graceful_shutdown())
        if self.rest_server is not None:
            self.rest_server.shutdown()
        self._on_loop(self.grpc_server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.executor.shutdown(wait=True)
        self.manager.stop()
        if self.batcher is not None:
            self.batcher.stop()

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


def batching_parameters(args: argparse.Namespace) -> BatchingParameters:
    """From the parameters file, then the individual flags on top."""
    params = BatchingParameters()
    if args.batching_parameters_file:
        with tf.io.gfile.GFile(args.batching_parameters_file) as f:
            params = parse_batching_parameters(f.read())
    overrides = {k: getattr(args, k) for k in BatchingParameters.__dataclass_fields__ if getattr(args, k) is not None}
    return BatchingParameters(**{**params.__dict__, **overrides})


def session_config(args: argparse.Namespace) -> tf.compat.v1.ConfigProto:
    """The TF session options every loaded version runs with."""
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=args.tensorflow_intra_op_parallelism,
        inter_op_parallelism_threads=args.tensorflow_inter_op_parallelism,
    )
    if args.inline_all_functions:
        # Grappler's default mode keeps a function call whose stateful ops (a vocabulary table's
        # size, read by tft.apply_vocabulary) do not depend on its inputs; AGGRESSIVE inlines it too.
        config.graph_options.rewrite_options.function_optimization = rewriter_config_pb2.RewriterConfig.AGGRESSIVE
    return config


def start_server(args: argparse.Namespace) -> RunningServer:
    """Load the models, then serve gRPC (and REST) in background threads."""
    if args.model_config_file:
        config = load_config_file(args.model_config_file)
    elif args.model_base_path:
        config = single_model_config(args.model_name, args.model_base_path)
    else:
        raise SystemExit("embedpipe serve: give --model_base_path (with --model_name) or --model_config_file")
    batcher = Batcher(batching_parameters(args)) if args.enable_batching else None
    handlers = RequestHandlers(manager=None, batcher=batcher)  # type: ignore[arg-type]
    manager = ModelManager(config, args.file_system_poll_wait_seconds, handlers.replay_warmup, session_config(args))
    handlers.manager = manager
    manager.start()

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="embedpipe-grpc", daemon=True).start()
    executor = futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads, thread_name_prefix="embedpipe-rpc")

    async def start_grpc() -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
        server = grpc.aio.server(options=GRPC_OPTIONS)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(handlers, executor), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(handlers, executor), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = server.add_insecure_port(f"{args.grpc_host}:{args.port}")
        if port == 0:
            raise SystemExit(f"embedpipe serve: cannot bind gRPC port {args.port}")
        await server.start()
        for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        return server, port, health_servicer

    server, port, health_servicer = asyncio.run_coroutine_threadsafe(start_grpc(), loop).result()
    running = RunningServer(server, port, manager, handlers, health_servicer, loop, executor, batcher=batcher)
    if args.rest_api_port:
        from serving.rest import make_rest_server

        running.rest_server = make_rest_server(handlers, args.rest_api_port)
        running.rest_port = running.rest_server.server_address[1]
    return running


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; exit 0 after draining."""
    args = build_parser().parse_args(argv)
    enable_object_storage()  # --model_base_path / --model_config_file may be s3:// (gs:// is built in)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        running = start_server(args)
    except (ValueError, OSError, ServingError) as e:  # a bad flag, config or batching file: say which, no traceback
        print(f"embedpipe serve: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    models = ", ".join(f"{n} (versions {sorted(v for v, _ in running.manager.status(n))})" if _has_status(running, n) else n
                       for n in running.manager.model_names())
    rest = f", REST on port {running.rest_port}" if running.rest_port else ""
    print(f"embedpipe serve: gRPC on port {running.port}{rest}; models: {models}", flush=True)
    stop.wait()
    print("embedpipe serve: draining in-flight requests, then exiting", flush=True)
    running.stop()
    return 0


def _has_status(running: RunningServer, name: str) -> bool:
    try:
        running.manager.status(name)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())
