"""Serving latency and throughput: in-process SavedModel calls vs the gRPC server, with and without batching.

    .venv/bin/python bench/serving.py --model runs/synthetic/serving/synthetic/<version> [--seconds 10]

One invocation measures, on this machine:
- baseline: the SavedModel's ``serving_default`` called in-process with one serialized example;
- ``embedpipe serve`` in a subprocess (batching off, then on): 1-example Predict latency with one
  client (p50/p99), and throughput with 1, 8 and 32 concurrent clients (threads, one channel each,
  in this process).
Prints a table and writes bench/out/serving.json. The model's raw rows come from its own
``assets.extra/tf_serving_warmup_requests`` (written by the pipeline's ServingCanary).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc  # noqa: E402

from bench.pipeline_wall_time import machine  # noqa: E402

MODEL = "bench"


def one_example(model_dir: str) -> bytes:
    """The first serialized example of the model's warmup Predict request."""
    path = os.path.join(model_dir, "assets.extra", "tf_serving_warmup_requests")
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.WhichOneof("log_type") == "predict_log":
            return tf.make_ndarray(log.predict_log.request.inputs["examples"])[0]
    raise SystemExit(f"{path}: no Predict warmup request to take an example from")


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    a = np.array(samples) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def in_process(model_dir: str, example: bytes, seconds: float) -> dict:
    """Latency of the signature call itself."""
    fn = tf.saved_model.load(model_dir).signatures["serving_default"]
    batch = tf.constant([example])
    for _ in range(50):
        fn(examples=batch)
    samples, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn(examples=batch)["probability"].numpy()
        samples.append(time.perf_counter() - start)
    p50, p99 = percentiles(samples)
    return {"p50_ms": p50, "p99_ms": p99, "calls": len(samples)}


def _request(example: bytes) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example], dtype=tf.string))
    return request


def latency(endpoint: str, example: bytes, seconds: float) -> dict:
    """One client, one request at a time."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(endpoint))
    request = _request(example)
    for _ in range(50):
        stub.Predict(request)
    samples, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        stub.Predict(request)
        samples.append(time.perf_counter() - start)
    p50, p99 = percentiles(samples)
    return {"p50_ms": p50, "p99_ms": p99, "calls": len(samples)}


def throughput(endpoint: str, example: bytes, clients: int, seconds: float) -> dict:
    """Predictions per second with ``clients`` concurrent 1-example clients."""
    request = _request(example)
    counts = [0] * clients
    errors = [0] * clients
    stop = threading.Event()

    def client(i: int) -> None:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(endpoint))
        stub.Predict(request)
        while not stop.is_set():
            try:
                stub.Predict(request)
                counts[i] += 1
            except grpc.RpcError:
                errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # every client connected and warm
    start_counts, start = sum(counts), time.perf_counter()
    time.sleep(seconds)
    done, elapsed = sum(counts) - start_counts, time.perf_counter() - start
    stop.set()
    for t in threads:
        t.join()
    return {"clients": clients, "predictions_per_s": done / elapsed, "errors": sum(errors)}


def serve(model_dir: str, port: int, batching: bool) -> subprocess.Popen:
    """``embedpipe serve`` on a copy of the model as version 1; returns once it answers."""
    base = tempfile.mkdtemp(prefix="embedpipe-bench-serving-")
    shutil.copytree(model_dir, os.path.join(base, "1"))
    flags = [f"--port={port}", f"--model_name={MODEL}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=0"]
    if batching:
        flags += ["--enable_batching", "--max_batch_size=32", "--batch_timeout_micros=500", "--num_batch_threads=2"]
    process = subprocess.Popen([sys.executable, "-m", "serving.server", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import TensorFlowServingClient

    TensorFlowServingClient(f"localhost:{port}", MODEL).WaitUntilModelLoaded(time.time() + 120, 0.2)
    return process


def main() -> None:
    """Measure and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="a pushed model version directory")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--output", default="bench/out/serving.json")
    args = parser.parse_args()
    import portpicker

    example = one_example(args.model)
    results: dict = {"machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"), "model": args.model}
    results["in_process"] = in_process(args.model, example, args.seconds)
    for batching in (False, True):
        port = portpicker.pick_unused_port()
        process = serve(args.model, port, batching)
        try:
            endpoint = f"localhost:{port}"
            key = "batching_on" if batching else "batching_off"
            results[key] = {
                "latency_1_client": latency(endpoint, example, args.seconds),
                "throughput": [throughput(endpoint, example, n, args.seconds) for n in (1, 8, 32)],
            }
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)

    base = results["in_process"]
    print(f"machine: {results['machine']}\ndate: {results['date']}\nmodel: {args.model}")
    print("\n| setting | 1-client p50 ms | 1-client p99 ms | overhead p50 ms | 1 client /s | 8 clients /s | 32 clients /s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| in-process serving_default call | {base['p50_ms']:.2f} | {base['p99_ms']:.2f} | - | {1000 / base['p50_ms']:,.0f} (1/p50) | - | - |")
    for key in ("batching_off", "batching_on"):
        r = results[key]
        lat, tp = r["latency_1_client"], r["throughput"]
        print(f"| embedpipe serve, {key.replace('_', ' ')} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | {lat['p50_ms'] - base['p50_ms']:.2f} "
              f"| {tp[0]['predictions_per_s']:,.0f} | {tp[1]['predictions_per_s']:,.0f} | {tp[2]['predictions_per_s']:,.0f} |")
    errors = sum(t["errors"] for key in ("batching_off", "batching_on") for t in results[key]["throughput"])
    print(f"\nfailed requests: {errors}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
