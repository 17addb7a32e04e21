"""Beam SDK workers for the portable runner: the worker pool (EXTERNAL environment) and its boot.

With ``beam.runner: portable`` (or flink / spark) and ``environment_type: EXTERNAL``, the runner
asks a worker pool at ``environment_config`` (host:port) to start SDK workers, the SDK-harness
path Flink, Spark and Dataflow runner v2 use. ``embedpipe beam-worker-pool`` is Beam's own pool
(``apache_beam.runners.worker.worker_pool_main``'s servicer) with three differences, each found by
running the whole pipeline through it (issue 13; the test's times: bench/RESULTS.md, "Scale"):

- each worker starts through ``embedpipe-beam-worker`` (``boot_main``, Beam's container contract:
  the pool passes ``--id`` and the endpoints): this interpreter, whatever PATH says (Beam's pool
  runs a bare ``python``, which found another Python without Beam: ModuleNotFoundError), Keras 2
  before TFMA loads a model in the worker (without it: "Keras 3 only supports V3 .keras"), s3://
  registered, and the job's pipeline options from the provision service;
- the worker's stdout goes to stderr: Beam's pool pipes it and never reads it, so a worker that
  printed 64 KB blocked for ever;
- it listens on ``--host`` (127.0.0.1 by default; Beam's binds every interface). A pool sidecar
  next to a Flink task manager is reached as localhost:PORT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time

WORKER_EXECUTABLE = "embedpipe-beam-worker"  # console script -> boot_main (setup.py)


def boot_main(argv: list[str] | None = None) -> None:
    """Start one SDK worker as Beam's container contract says (what the pool runs per worker)."""
    os.dup2(2, 1)  # the pool never reads the worker's stdout pipe
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format

    import patches  # Keras 2 (TF_USE_LEGACY_KERAS=1) before TensorFlow loads
    from storage import enable_object_storage

    parser = argparse.ArgumentParser(prog=WORKER_EXECUTABLE)
    for name in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint", "control_endpoint"):
        parser.add_argument(f"--{name}", required=True)
    args, _ = parser.parse_known_args(argv)
    enable_object_storage(beam=True)
    patches.exclude_tf_keras_from_autograph()  # TFMA loads the model with tf_keras in the worker
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), timeout=60, metadata=(("worker_id", args.id),)).info
    from apache_beam.runners.worker import sdk_worker_main

    # Beam's semi-persistent directory: the worker's own scratch space on this machine (never data
    # or artifacts, which go through tf.io.gfile), removed when the worker exits
    with tempfile.TemporaryDirectory(prefix=f"beam-worker-{args.id}-") as scratch:
        os.environ.update(
            WORKER_ID=args.id,
            PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
            CONTROL_API_SERVICE_DESCRIPTOR=f'url: "{args.control_endpoint}"',
            LOGGING_API_SERVICE_DESCRIPTOR=f'url: "{args.logging_endpoint}"',
            SEMI_PERSISTENT_DIRECTORY=scratch,
        )
        sdk_worker_main.main([WORKER_EXECUTABLE])


def worker_executable() -> str:
    """The boot script installed beside this interpreter."""
    path = os.path.join(os.path.dirname(sys.executable), WORKER_EXECUTABLE)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path}: not installed; reinstall the project (pip install -e .)")
    return path


def run_worker_pool(port: int, host: str = "127.0.0.1") -> int:
    """Serve Beam's worker pool on host:port until SIGTERM/SIGINT; workers are stopped on the way out."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer, kill_process_gracefully
    from apache_beam.utils import thread_pool_executor

    pool = BeamFnExternalWorkerPoolServicer(use_process=True, container_executable=worker_executable(),
                                            data_buffer_time_limit_ms=-1)
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                         options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)])
    bound = server.add_insecure_port(f"{host}:{port}")
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    print(f"embedpipe: Beam worker pool on {host}:{bound} (workers: {worker_executable()})", flush=True)
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    while not stopping:
        time.sleep(0.2)
        for worker_id, proc in list(pool._worker_processes.items()):  # reap finished workers: no zombies
            if proc.poll() is not None:
                pool._worker_processes.pop(worker_id, None)
    server.stop(grace=2)
    for proc in list(pool._worker_processes.values()):  # Beam's pool left running workers orphaned
        kill_process_gracefully(proc, timeout=10)
    return 0
