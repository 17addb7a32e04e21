"""The model server process: ``embedpipe serve`` (flags named like tensorflow_model_server's).

    embedpipe serve --port=8500 --rest_api_port=8501 --model_name=M --model_base_path=/models/M
    embedpipe serve --model_config_file=models.config --enable_batching

gRPC PredictionService + ModelService + grpc.health.v1 on ``--port``, REST on ``--rest_api_port``
(0 = off). SIGTERM/SIGINT: stop taking requests, let in-flight ones finish, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import tensorflow as tf
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow_serving.apis import model_service_pb2_grpc

from serving.batching import Batcher, BatchingParameters, parse_batching_parameters
from serving.errors import ServingError
from serving.flags import build_parser, check_flags, grpc_channel_arguments
from serving.grpc_options import GRPC_OPTIONS
from serving.grpc_services import ModelService, PredictionService, prediction_service_handler
from serving.handlers import RequestHandlers
from serving.model_manager import ModelManager, parse_model_config, single_model_config
from serving.monitoring import Metrics, prometheus_path
from serving.parent_death import die_with_parent_if_asked
from serving.profiler_service import profiler_handler
from serving.reload_policy import ReloadPolicy
from serving.request_log import RequestLogs, add_logging_config
from serving.rest_server import RestServer, start_rest_server
from serving.servable import LoadOptions
from serving.tls import grpc_credentials, parse_ssl_config, rest_context
from serving.warmup import replay_warmup
from storage import enable_object_storage

log = logging.getLogger("embedpipe.serving")


@dataclass
class RunningServer:
    """A started server; ``stop`` drains it. gRPC and REST run on one asyncio loop in a daemon thread."""

    grpc_server: grpc.aio.Server
    port: int
    manager: ModelManager
    handlers: RequestHandlers
    health: health.aio.HealthServicer
    loop: asyncio.AbstractEventLoop
    executor: futures.ThreadPoolExecutor
    rest_server: RestServer | None = None
    rest_port: int = 0
    batcher: Batcher | None = None
    request_logs: RequestLogs | None = None
    config_poller: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new requests, finish in-flight ones (up to ``grace`` s), stop polling."""
        self.stopping.set()
        self._on_loop(self.health.enter_graceful_shutdown())
        if self.rest_server is not None:
            self.rest_server.stop(grace)
        self._on_loop(self.grpc_server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.executor.shutdown(wait=True)
        if self.request_logs is not None:  # after the last request: every accepted record is written
            self.request_logs.close()
        self.manager.stop()
        if self.batcher is not None:
            self.batcher.stop()

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


def read_flag_file(flag: str, path: str) -> str:
    """The text of the file a flag names (local or a bucket); a missing or unreadable one is a flag
    error (exit 2, naming the flag and the path), not a TensorFlow traceback."""
    try:
        with tf.io.gfile.GFile(path) as f:
            return f.read()
    except tf.errors.NotFoundError:
        raise ValueError(f"--{flag}={path}: no such file") from None
    except tf.errors.OpError as e:
        raise ValueError(f"--{flag}={path}: cannot be read ({e.message})") from None


def batching_parameters(args: argparse.Namespace) -> BatchingParameters:
    """From the parameters file, then the individual flags on top."""
    params = BatchingParameters()
    if args.batching_parameters_file:
        params = parse_batching_parameters(read_flag_file("batching_parameters_file", args.batching_parameters_file))
    overrides = {k: getattr(args, k) for k in BatchingParameters.__dataclass_fields__ if getattr(args, k) is not None}
    return BatchingParameters(**{**params.__dict__, **overrides})


def session_config(args: argparse.Namespace) -> tf.compat.v1.ConfigProto:
    """The TF session options every loaded version runs with: ``--tensorflow_session_config_file``,
    then the parallelism flags on top (``--tensorflow_session_parallelism`` fills both pools' sizes
    where their own flags are 0, as in TF Serving)."""
    config = tf.compat.v1.ConfigProto()
    if args.tensorflow_session_config_file:
        from google.protobuf import text_format

        text_format.Parse(read_flag_file("tensorflow_session_config_file", args.tensorflow_session_config_file), config)
    intra = args.tensorflow_intra_op_parallelism or args.tensorflow_session_parallelism
    inter = args.tensorflow_inter_op_parallelism or args.tensorflow_session_parallelism
    if intra:
        config.intra_op_parallelism_threads = intra
    if inter:
        config.inter_op_parallelism_threads = inter
    if args.inline_all_functions:
        # Grappler's default mode keeps a function call whose stateful ops (a vocabulary table's
        # size, read by tft.apply_vocabulary) do not depend on its inputs; AGGRESSIVE inlines it too.
        config.graph_options.rewrite_options.function_optimization = rewriter_config_pb2.RewriterConfig.AGGRESSIVE
    return config


def register_custom_ops() -> None:
    """TF Text's kernels, as tensorflow_model_server links them: models using them load."""
    try:
        import tensorflow_text  # noqa: F401 -- registers the ops
    except ImportError:  # not installed: models with TF Text ops fail to load, naming the op
        log.warning("tensorflow-text is not installed: models using TF Text ops will not load")


def start_server(args: argparse.Namespace) -> RunningServer:
    """Load the models, then serve gRPC (and REST) in background threads."""
    register_custom_ops()
    config_text = None
    if args.model_config_file:
        config_text = read_flag_file("model_config_file", args.model_config_file)
        config = parse_model_config(config_text, args.model_config_file)
    elif args.model_base_path:
        config = single_model_config(args.model_name, args.model_base_path)
        if args.request_log_file_prefix:
            add_logging_config(config, args.request_log_file_prefix, args.request_log_sampling_rate)
    else:
        raise SystemExit("embedpipe serve: give --model_base_path (with --model_name) or --model_config_file")
    if args.request_log_file_prefix and args.model_config_file:
        raise ValueError("--request_log_file_prefix is for the single-model case: with --model_config_file, "
                         "give each model a logging_config")
    ignored = check_flags(args)
    if ignored:
        log.warning("accepted but not applied here (docs/SERVING.md): %s", ", ".join(f"--{n}" for n in ignored))
    channel_options = grpc_channel_arguments(args.grpc_channel_arguments)
    tls = None
    if args.ssl_config_file:  # TLS (and with client_verify, mutual TLS) on both transports
        tls = parse_ssl_config(read_flag_file("ssl_config_file", args.ssl_config_file), args.ssl_config_file)
    roots = args.model_reload_roots.split(",") if args.model_reload_roots else [m.base_path for m in config.model_config_list.config]
    reload_policy = ReloadPolicy.of(args.allow_model_config_reload, roots)
    metrics_path = None
    if args.monitoring_config_file:
        metrics_path = prometheus_path(read_flag_file("monitoring_config_file", args.monitoring_config_file), args.monitoring_config_file)
    metrics = Metrics()
    batcher = Batcher(batching_parameters(args), metrics) if args.enable_batching else None
    load_options = LoadOptions(session_config(args), tuple(t.strip() for t in args.saved_model_tags.split(",") if t.strip()),
                               args.enable_signature_method_name_check, args.prefer_tflite_model)
    warmup = (functools.partial(replay_warmup, iterations=args.num_request_iterations_for_warmup, batcher=batcher,
                                max_request_elements=args.max_request_elements) if args.enable_model_warmup else None)
    request_logs = RequestLogs(metrics)
    manager = ModelManager(config, args.file_system_poll_wait_seconds, warmup, load_options,
                           args.max_num_load_retries, args.load_retry_interval_micros / 1e6, metrics, on_config=request_logs.update)
    handlers = RequestHandlers(manager, batcher=batcher, metrics=metrics, max_request_elements=args.max_request_elements,
                               request_logs=request_logs)
    manager.start()

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="embedpipe-grpc", daemon=True).start()
    executor = futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads, thread_name_prefix="embedpipe-rpc")

    async def start_grpc() -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
        server = grpc.aio.server(options=GRPC_OPTIONS + channel_options)
        server.add_generic_rpc_handlers((prediction_service_handler(PredictionService(handlers, executor)),))
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(handlers, executor, reload_policy), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if args.enable_profiler:
            server.add_generic_rpc_handlers((profiler_handler(executor),))
        def listen(address: str) -> int:
            return server.add_secure_port(address, grpc_credentials(tls)) if tls else server.add_insecure_port(address)

        port = listen(f"{args.grpc_host}:{args.port}")
        if port == 0:
            raise SystemExit(f"embedpipe serve: cannot bind gRPC port {args.port}")
        if args.grpc_socket_path and not listen(f"unix:{args.grpc_socket_path}"):
            raise SystemExit(f"embedpipe serve: cannot listen on UNIX socket {args.grpc_socket_path}")
        await server.start()
        for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        return server, port, health_servicer

    server, port, health_servicer = asyncio.run_coroutine_threadsafe(start_grpc(), loop).result()
    running = RunningServer(server, port, manager, handlers, health_servicer, loop, executor, batcher=batcher,
                            request_logs=request_logs)
    if args.rest_api_port:
        running.rest_server = start_rest_server(
            handlers, loop, args.rest_api_port, args.rest_api_host, cors=args.rest_api_enable_cors_support, metrics_path=metrics_path,
            tls=rest_context(tls) if tls else None, num_threads=args.rest_api_num_threads, timeout_ms=args.rest_api_timeout_in_ms)
        running.rest_port = running.rest_server.port
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        running.config_poller = threading.Thread(
            target=_poll_config_file, args=(args.model_config_file, config_text, args.model_config_file_poll_wait_seconds, running),
            name="embedpipe-config-poller", daemon=True)
        running.config_poller.start()
    return running


def _poll_config_file(path: str, last: str, every: float, running: RunningServer) -> None:
    """Re-read ``--model_config_file`` every ``every`` seconds; apply it when its text differs from
    ``last`` (the text the server runs). As TF Serving's config poller: a file that cannot be read
    or parsed is logged and the current models keep serving.
    """
    while not running.stopping.wait(every):
        try:
            with tf.io.gfile.GFile(path) as f:
                text = f.read()
            if text != last:
                running.manager.reload(parse_model_config(text, path))
                last = text
                log.info("applied the changed model config file %s", path)
        except Exception as e:  # keep serving what is loaded
            log.error("model config file %s not applied: %s", path, e)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; exit 0 after draining."""
    die_with_parent_if_asked()
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"TensorFlow ModelServer: embedpipe (TF Serving 2.16.1 API)\nTensorFlow Library: {tf.__version__}")
        return 0
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
