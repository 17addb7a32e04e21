"""Serving latency and throughput: in-process SavedModel calls vs the gRPC server, with and without batching.

    .venv/bin/python bench/serving_latency.py --model runs/synthetic/serving/synthetic/<version> [--seconds 8]

One invocation measures, on this machine:
- the floors: bench/grpc_floor_server.py, the same grpc.aio stack answering a prebuilt response,
  and bench/loadgen/floor_server.cc, gRPC C++ answering the same bytes (built like loadgen, below):
  what a request costs before any model or handler code, with a Python and with a C++ server core;
- baselines: the SavedModel's ``serving_default`` called in-process with one serialized example,
  (a) through the TF2 eager signature (``tf.saved_model.load(...).signatures``) and (b) the way the
  server runs it (``serving.servable.ServableVersion``: a TF Session callable, same session options;
  once more with ``--inline_all_functions=false``, TensorFlow's default function inlining);
- ``embedpipe serve`` in a subprocess (batching off, then on), driven by two kinds of client:
  * the stock Python stubs (threads in this process, one channel each), what a Python service sees;
  * ``bench/loadgen`` (C++, ghz-style: one connection per client, one call in flight each, all
    driven from one thread), so the client costs little of the same two cores. Built here with
    g++ when ``pkg-config grpc++`` finds gRPC C++ (Debian: ``apt-get install libgrpc++-dev
    pkg-config``); without it those rows are left out and the script says so.
  1-example Predict latency with one client (p50/p99) and throughput with 1, 8 and 32 clients;
- request logging's cost (issue 37): 32 batched clients' throughput (the batching-on settings above,
  loadgen if built, else the Python stubs) with logging off, at ``--request_log_sampling_rate`` 1.0
  and at 0.1, the three taking turns over ``--request-log-rounds`` rounds (ABC CBA ABC ...: this
  VM's speed drifts), each run and the medians, and the records the server wrote (counted in the
  log files, in a temp dir deleted afterwards). ``--only-request-log`` runs just this comparison.
Prints a table and the issue's targets met or not, and writes bench/out/serving.json
(``--only-request-log``: bench/out/serving_request_log.json). The model's raw rows come from its
own ``assets.extra/tf_serving_warmup_requests`` (written by the ServingCanary).
"""

from __future__ import annotations

import argparse
import datetime
import glob
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc  # noqa: E402

from bench.pipeline_wall_time import machine  # noqa: E402

MODEL = "bench"
CLIENTS = (1, 8, 32)
LATENCY_RUNS = 3  # 1-client latency varies ~15% run to run here: report the median run, keep all
# issue 37: request logging's cost to 32 batched clients' throughput; (label, sampling rate or None = off)
REQUEST_LOG_SETTINGS = (("off", None), ("1.0", 1.0), ("0.1", 0.1))
REQUEST_LOG_TARGETS = {"1.0": 5.0, "0.1": 1.0}  # % of the throughput with logging off, at most


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


def _time_calls(call, seconds: float) -> dict:
    for _ in range(50):
        call()
    samples, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    p50, p99 = percentiles(samples)
    return {"p50_ms": p50, "p99_ms": p99, "calls": len(samples)}


def in_process_eager(model_dir: str, example: bytes, seconds: float) -> dict:
    """The TF2 way: the loaded SavedModel's signature function."""
    fn = tf.saved_model.load(model_dir).signatures["serving_default"]
    batch = tf.constant([example])
    return _time_calls(lambda: fn(examples=batch)["probability"].numpy(), seconds)


def in_process_session(model_dir: str, example: bytes, seconds: float, server_flags: tuple[str, ...] = ()) -> dict:
    """The way the server runs the signature (its ServableVersion, its session options: the defaults + ``server_flags``)."""
    from serving.servable import LoadOptions, ServableVersion
    from serving.server import build_parser, session_config

    servable = ServableVersion(MODEL, 1, model_dir, LoadOptions(session_config(build_parser().parse_args(list(server_flags)))))
    batch = {"examples": np.array([example], dtype=object)}
    return _time_calls(lambda: servable.run("serving_default", batch), seconds)


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
    # same keys as loadgen, and every call answered (warm-up included: each one a request-log candidate)
    return {"clients": clients, "per_s": done / elapsed, "errors": sum(errors), "answered": sum(counts) + clients}


def build_tool(name: str) -> str | None:
    """Compile bench/loadgen/<name>.cc (once per source change); None when gRPC C++ is missing."""
    source = Path(__file__).with_name("loadgen") / f"{name}.cc"
    binary = Path(__file__).with_name("out") / name
    if shutil.which("g++") is None or subprocess.run(["pkg-config", "--exists", "grpc++"], check=False).returncode != 0:
        print(f"bench/loadgen/{name}.cc not built: needs g++ and gRPC C++ (apt-get install libgrpc++-dev pkg-config)", file=sys.stderr)
        return None
    sources = [source, source.with_name("tool_args.h")]
    if not binary.exists() or binary.stat().st_mtime < max(s.stat().st_mtime for s in sources):
        binary.parent.mkdir(parents=True, exist_ok=True)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++"], capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(["g++", "-O2", "-std=c++17", str(source), "-o", str(binary), *flags], check=True)
    return str(binary)


def loadgen(binary: str, endpoint: str, request_file: str, clients: int, seconds: float) -> dict:
    """One bench/loadgen run: {clients, calls, errors, per_s, p50_ms, p99_ms, ...}."""
    out = subprocess.run(
        [binary, "--target", endpoint, "--request", request_file, "--clients", str(clients), "--seconds", str(seconds)],
        capture_output=True, text=True, check=False,
    )
    if not out.stdout.strip():
        raise SystemExit(f"loadgen failed: {out.stderr}")
    return json.loads(out.stdout)


_SCRATCH: list[str] = []


def _scratch() -> str:
    """One temp dir for this invocation's model copies, deleted when it exits (each run copied the model
    into a dir of its own and left it: 33 copies after a day of runs)."""
    if not _SCRATCH:
        import atexit

        _SCRATCH.append(tempfile.mkdtemp(prefix="embedpipe-bench-serving-"))
        atexit.register(shutil.rmtree, _SCRATCH[0], True)
    return _SCRATCH[0]


def serve(model_dir: str, port: int, batch_timeout_micros: int | None, extra_flags: tuple[str, ...] = ()) -> subprocess.Popen:
    """``embedpipe serve`` (this checkout's serving/, whatever the working directory) on a copy of the
    model as version 1, with ``extra_flags``; returns once it answers."""
    base = tempfile.mkdtemp(dir=_scratch())
    shutil.copytree(model_dir, os.path.join(base, "1"))
    flags = [f"--port={port}", f"--model_name={MODEL}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=0"]
    if batch_timeout_micros is not None:  # batching on
        flags += ["--enable_batching", "--max_batch_size=32", f"--batch_timeout_micros={batch_timeout_micros}", "--num_batch_threads=1"]
    process = subprocess.Popen([sys.executable, "-m", "serving.server", *flags, *extra_flags], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import TensorFlowServingClient

    TensorFlowServingClient(f"localhost:{port}", MODEL).WaitUntilModelLoaded(time.time() + 120, 0.2)
    return process


def _floor_runs(binary: str | None, endpoint: str, request_file: str, example: bytes, seconds: float) -> dict:
    """1-client latency (median of LATENCY_RUNS loadgen runs) and the 32-client rate of a floor server."""
    if binary:
        runs = sorted((loadgen(binary, endpoint, request_file, 1, seconds) for _ in range(LATENCY_RUNS)), key=lambda r: r["p50_ms"])
        return {"client": "loadgen", "latency_1_client": runs[len(runs) // 2], "latency_runs": runs,
                "clients_32": loadgen(binary, endpoint, request_file, 32, seconds)}
    return {"client": "python_client", "latency_1_client": latency(endpoint, example, seconds),
            "clients_32": throughput(endpoint, example, 32, seconds)}


def _answer_once(endpoint: str, example: bytes) -> None:
    """Returns once a server on ``endpoint`` answers Predict."""
    with grpc.insecure_channel(endpoint) as channel:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_request(example), wait_for_ready=True, timeout=120)


def grpc_floor(binary: str | None, request_file: str, example: bytes, seconds: float) -> dict:
    """bench/grpc_floor_server.py (grpc.aio answering a prebuilt Predict response): 1-client latency, 32-client rate."""
    import portpicker

    port = portpicker.pick_unused_port()
    script = Path(__file__).with_name("grpc_floor_server.py")
    process = subprocess.Popen([sys.executable, str(script), f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    endpoint = f"localhost:{port}"
    try:
        _answer_once(endpoint, example)
        return _floor_runs(binary, endpoint, request_file, example, seconds)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def grpc_cpp_floor(server_binary: str, loadgen_binary: str, request_file: str, example: bytes, seconds: float) -> dict:
    """bench/loadgen/floor_server.cc (gRPC C++ answering the same prebuilt response): what the transport costs without Python."""
    import portpicker

    from bench.grpc_floor_server import prebuilt_response

    response_file = os.path.join(os.path.dirname(request_file), "floor_response.bin")
    with open(response_file, "wb") as f:
        f.write(prebuilt_response().SerializeToString())
    port = portpicker.pick_unused_port()
    process = subprocess.Popen([server_binary, "--port", str(port), "--response", response_file], stdout=subprocess.DEVNULL)
    endpoint = f"localhost:{port}"
    try:
        _answer_once(endpoint, example)
        return _floor_runs(loadgen_binary, endpoint, request_file, example, seconds)
    finally:
        process.kill()
        process.wait(timeout=60)


def _row(label: str, lat: dict, rates: list[float], fastest: float) -> str:
    cells = " | ".join(f"{r:,.0f}" for r in rates)
    return f"| {label} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | {lat['p50_ms'] - fastest:.2f} | {cells} |"


def main() -> None:
    """Measure and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="a pushed model version directory")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--output", help="the JSON written (default bench/out/serving.json)")
    parser.add_argument("--batch-timeout-micros", type=int, default=0, help="batching on: how long a batch waits to fill")
    parser.add_argument("--sweep-batch-timeouts", default="", help="e.g. 0,500,2000,10000: also measure 1 and 32 loadgen clients at each")
    parser.add_argument("--request-log-rounds", type=int, default=5,
                        help="issue 37: rounds of logging off / sampling 1.0 / 0.1 (5: the rate moves +-15 %% run to run here)")
    parser.add_argument("--only-request-log", action="store_true",
                        help="measure only request logging's cost (default output bench/out/serving_request_log.json)")
    args = parser.parse_args()
    import portpicker

    example = one_example(args.model)
    request_file = os.path.join(tempfile.mkdtemp(prefix="embedpipe-bench-"), "predict.bin")
    with open(request_file, "wb") as f:
        f.write(_request(example).SerializeToString())
    binary = build_tool("loadgen")
    results: dict = {"machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"), "model": args.model}
    if args.only_request_log:
        results["batch_timeout_micros"] = args.batch_timeout_micros
        results["request_log"] = request_log_cost(args.model, binary, request_file, example, args.batch_timeout_micros, args.seconds,
                                                  args.request_log_rounds)
        print(f"machine: {results['machine']}\ndate: {results['date']}\nmodel: {results['model']}")
        print(f"batching on = --max_batch_size=32 --batch_timeout_micros={args.batch_timeout_micros} --num_batch_threads=1")
        report_request_log(results["request_log"])
        write_json(results, args.output or "bench/out/serving_request_log.json")
        return
    cpp_floor_server = build_tool("floor_server") if binary else None
    results["in_process_eager"] = in_process_eager(args.model, example, args.seconds)
    results["in_process_session"] = in_process_session(args.model, example, args.seconds)
    results["in_process_session_default_inlining"] = in_process_session(args.model, example, args.seconds, ("--inline_all_functions=false",))
    results["grpc_floor"] = grpc_floor(binary, request_file, example, args.seconds)
    if cpp_floor_server:
        results["grpc_cpp_floor"] = grpc_cpp_floor(cpp_floor_server, binary, request_file, example, args.seconds)
    for batching in (False, True):
        port = portpicker.pick_unused_port()
        process = serve(args.model, port, args.batch_timeout_micros if batching else None)
        try:
            endpoint = f"localhost:{port}"
            key = "batching_on" if batching else "batching_off"
            results[key] = {
                "python_client": {
                    "latency_1_client": latency(endpoint, example, args.seconds),
                    "throughput": [throughput(endpoint, example, n, args.seconds) for n in CLIENTS],
                },
            }
            if binary:
                runs = sorted((loadgen(binary, endpoint, request_file, 1, args.seconds) for _ in range(LATENCY_RUNS)), key=lambda r: r["p50_ms"])
                results[key]["loadgen"] = {
                    "latency_1_client": runs[len(runs) // 2],  # the run with the median p50
                    "latency_runs": runs,
                    "throughput": [loadgen(binary, endpoint, request_file, n, args.seconds) for n in CLIENTS],
                }
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    if args.sweep_batch_timeouts and binary:
        results["batch_timeout_sweep"] = sweep(args.model, binary, request_file, [int(t) for t in args.sweep_batch_timeouts.split(",")], args.seconds)
    results["request_log"] = request_log_cost(args.model, binary, request_file, example, args.batch_timeout_micros, args.seconds,
                                              args.request_log_rounds)
    results["batch_timeout_micros"] = args.batch_timeout_micros
    report(results)
    report_request_log(results["request_log"])
    write_json(results, args.output or "bench/out/serving.json")


def write_json(results: dict, path: str) -> None:
    """The raw results (bench/out/ is not committed)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwrote {path}")


def sweep(model_dir: str, binary: str, request_file: str, timeouts: list[int], seconds: float) -> list[dict]:
    """Batching on at several batch_timeout_micros: the latency a lone client pays vs 32-client throughput."""
    import portpicker

    rows = []
    for timeout in timeouts:
        port = portpicker.pick_unused_port()
        process = serve(model_dir, port, timeout)
        try:
            endpoint = f"localhost:{port}"
            rows.append({"batch_timeout_micros": timeout, "one_client": loadgen(binary, endpoint, request_file, 1, seconds),
                         "clients_32": loadgen(binary, endpoint, request_file, 32, seconds)})
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    return rows


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process (all its threads) has used so far; None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _log_records(prefix: str) -> dict:
    """What a server wrote under a request-log prefix: complete files, their records, files left open (.tmp),
    and whether the first record is a PredictionLog holding a Predict call."""
    files = sorted(glob.glob(prefix + "*.tfrecord"))
    records, first = 0, None
    for record in tf.data.TFRecordDataset(files) if files else ():
        if first is None:
            first = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        records += 1
    return {"files": len(files), "records": records, "open_files_left": len(glob.glob(prefix + "*.tmp")),
            "first_record_is_predict_log": first is not None and first.WhichOneof("log_type") == "predict_log"}


def request_log_cost(model_dir: str, binary: str | None, request_file: str, example: bytes, batch_timeout_micros: int,
                     seconds: float, rounds: int) -> dict:
    """Issue 37: 32 batched clients' throughput with request logging off, at sampling 1.0 and at 0.1.

    One server per run (batching on as in the batching-on rows), the settings taking turns, ABC CBA ABC ...
    so that a drift in the VM's speed falls on all three alike. Each logging server writes under its own
    prefix in a temp dir, counted after SIGTERM (the server writes everything queued before it exits)
    and deleted at the end.
    """
    import portpicker

    client = "loadgen" if binary else "python_client"
    log_dir = tempfile.mkdtemp(prefix="embedpipe-bench-request-log-")
    runs = []
    try:
        for round_ in range(rounds):
            order = REQUEST_LOG_SETTINGS if round_ % 2 == 0 else REQUEST_LOG_SETTINGS[::-1]
            for label, rate in order:
                prefix = os.path.join(log_dir, f"round{round_}-{label}", "requests")
                flags = () if rate is None else (f"--request_log_file_prefix={prefix}", f"--request_log_sampling_rate={rate}")
                port = portpicker.pick_unused_port()
                process = serve(model_dir, port, batch_timeout_micros, flags)
                try:
                    endpoint = f"localhost:{port}"
                    cpu_before = _cpu_seconds(process.pid)
                    if binary:
                        measured = loadgen(binary, endpoint, request_file, 32, seconds)
                    else:
                        measured = throughput(endpoint, example, 32, seconds)
                    cpu_after = _cpu_seconds(process.pid)
                    if cpu_before is not None and cpu_after is not None:
                        # the server's CPU per call, less noisy than the rate: the clients share its 2 cores
                        calls = measured.get("answered") or measured["calls"]
                        measured["server_cpu_s"] = cpu_after - cpu_before
                        measured["server_cpu_us_per_call"] = 1e6 * (cpu_after - cpu_before) / calls
                finally:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=120)
                run = {"round": round_ + 1, "setting": label, "sampling_rate": rate, "server_exit_code": process.returncode, **measured}
                if rate is not None:
                    run["log"] = _log_records(prefix)
                runs.append(run)
                print(f"request log {label}, round {round_ + 1}: {measured['per_s']:,.0f}/s"
                      + (f", {run['log']['records']:,} records" if rate is not None else ""), file=sys.stderr)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    medians = {label: float(np.median([r["per_s"] for r in runs if r["setting"] == label])) for label, _ in REQUEST_LOG_SETTINGS}
    cpu = {label: float(np.median([r["server_cpu_us_per_call"] for r in runs if r["setting"] == label]))
           for label, _ in REQUEST_LOG_SETTINGS if all("server_cpu_us_per_call" in r for r in runs)}
    off = medians["off"]
    slowdowns = {}
    for label, target in REQUEST_LOG_TARGETS.items():
        paired = []  # against the "off" run of the same round
        for round_ in range(1, rounds + 1):
            by_setting = {r["setting"]: r["per_s"] for r in runs if r["round"] == round_}
            paired.append(100.0 * (1.0 - by_setting[label] / by_setting["off"]))
        slowdown = 100.0 * (1.0 - medians[label] / off)
        slowdowns[label] = {"percent": slowdown, "target_percent": target, "met": slowdown <= target,
                            "per_round_percent": paired, "median_per_round_percent": float(np.median(paired))}
    return {"client": client, "clients": 32, "seconds": seconds, "rounds": rounds, "batch_timeout_micros": batch_timeout_micros,
            "runs": runs, "median_per_s": medians, "median_server_cpu_us_per_call": cpu, "slowdown": slowdowns,
            "logger_cpu_us": logger_cpu_cost(example)}


def logger_cpu_cost(example: bytes, calls: int = 20_000, repeats: int = 3) -> dict:
    """The logger's own CPU per logged call, in-process (best of ``repeats``), for a 1-example Predict:
    what the throughput comparison above cannot resolve under its run-to-run noise. ``request_thread``:
    the sample and the queue put in the request's thread (sampling 1.0, and 0.1 per call offered);
    ``writer_wire``: the record made of the wire bytes and written (gRPC Predict); ``writer_messages``:
    the record built from the messages, serialized and written (REST, Classify / Regress / MultiInference)."""
    import queue as queue_module

    from serving.monitoring import Metrics
    from serving.request_log import LogSettings, RequestLogger, predict_log_bytes, prediction_log

    request = _request(example)
    response = predict_pb2.PredictResponse()
    response.model_spec.name, response.model_spec.version.value = MODEL, 1
    response.outputs["probability"].CopyFrom(tf.make_tensor_proto([[0.5]], dtype=tf.float32))
    request_bytes, response_bytes, spec_bytes = request.SerializeToString(), response.SerializeToString(), response.model_spec.SerializeToString()
    work = tempfile.mkdtemp(prefix="embedpipe-bench-logger-")

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) / calls * 1e6)
        return min(times)

    def offered(rate: float) -> float:
        logger = RequestLogger(MODEL, LogSettings(os.path.join(work, f"r{rate}"), rate), Metrics(), queue_size=calls * repeats + 1)
        try:
            return best(lambda: [logger.log_predict_bytes(request_bytes, response_bytes, spec_bytes) for _ in range(calls)])
        finally:
            logger._queue = queue_module.Queue()  # what was queued is not the point here: close without writing it
            logger.close()

    writer = tf.io.TFRecordWriter(os.path.join(work, "records.tfrecord"))
    try:
        result = {
            "request_thread_1.0_us": offered(1.0),
            "request_thread_0.1_us": offered(0.1),
            "writer_wire_us": best(lambda: [writer.write(predict_log_bytes(request_bytes, response_bytes, spec_bytes)) for _ in range(calls)]),
            "writer_messages_us": best(lambda: [writer.write(prediction_log(request, response).SerializeToString()) for _ in range(calls)]),
        }
    finally:
        writer.close()
        shutil.rmtree(work, ignore_errors=True)
    return result


def report_request_log(r: dict) -> None:
    """Issue 37's table: each run, the medians, the slowdowns against logging off and the targets."""
    label = "bench/loadgen (C++)" if r["client"] == "loadgen" else "Python stubs"
    print(f"\nrequest logging's cost (issue 37): {r['clients']} clients ({label}), batching on, {r['seconds']:g} s a run, "
          f"{r['rounds']} rounds, settings taking turns (ABC CBA ...)")
    print("\n| round | logging | predictions/s | server CPU us / call | answered calls | records written | records / answered | failed |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for run in r["runs"]:
        answered = run.get("answered")
        log = run.get("log")
        written = f"{log['records']:,}" if log else "-"
        share = f"{log['records'] / answered:.3f}" if log and answered else "-"
        setting = "off" if run["sampling_rate"] is None else f"sampling {run['setting']}"
        cpu = f"{run['server_cpu_us_per_call']:.0f}" if "server_cpu_us_per_call" in run else "-"
        print(f"| {run['round']} | {setting} | {run['per_s']:,.0f} | {cpu} | {f'{answered:,}' if answered else '-'} | {written} | {share} "
              f"| {run['errors']} |")
    off = r["median_per_s"]["off"]
    print(f"\nmedian predictions/s: off {off:,.0f}, " + ", ".join(f"sampling {k} {r['median_per_s'][k]:,.0f}" for k in REQUEST_LOG_TARGETS))
    cpu = r.get("median_server_cpu_us_per_call")
    if cpu:
        print("median server CPU per answered call: " + ", ".join(f"{k} {v:.0f} us" for k, v in cpu.items())
              + " (" + ", ".join(f"{k} {100.0 * (cpu[k] / cpu['off'] - 1):+.1f} %" for k in REQUEST_LOG_TARGETS) + " against off)")
    left_open = sum(run["log"]["open_files_left"] for run in r["runs"] if "log" in run)
    not_predict = sum(not run["log"]["first_record_is_predict_log"] for run in r["runs"] if "log" in run)
    exits = sorted({run["server_exit_code"] for run in r["runs"]})
    print(f"files left open (.tmp): {left_open}; logging runs whose first record is not a Predict PredictionLog: {not_predict}; "
          f"server exit codes: {exits}")
    own = r.get("logger_cpu_us")
    if own and cpu:
        per_call = {"1.0": own["request_thread_1.0_us"] + own["writer_wire_us"], "0.1": own["request_thread_0.1_us"] + 0.1 * own["writer_wire_us"]}
        print(f"the logger's own CPU per call, in-process (best of 3 x 20,000): request thread {own['request_thread_1.0_us']:.2f} us at 1.0, "
              f"{own['request_thread_0.1_us']:.2f} us at 0.1; writer {own['writer_wire_us']:.2f} us a record from the wire bytes "
              f"({own['writer_messages_us']:.2f} us from the messages, REST and the other calls)")
        print("  against the off server's CPU per call (" + f"{cpu['off']:.0f} us): "
              + ", ".join(f"sampling {k} {v:.2f} us = {100 * v / cpu['off']:.2f} %" for k, v in per_call.items())
              + " (the throughput a CPU-bound server can lose to it)")
    print("issue 37 targets (throughput lost against logging off, medians; resolved only when every round's pair agrees):")
    for k, s in r["slowdown"].items():
        rounds = ", ".join(f"{p:+.1f}" for p in s["per_round_percent"])
        sides = {p <= s["target_percent"] for p in s["per_round_percent"]}
        if len(s["per_round_percent"]) < 3:
            agree = "under 3 rounds: NOT resolved"
        else:
            agree = "every round agrees" if len(sides) == 1 else "rounds disagree: NOT resolved on this machine"
        print(f"  sampling {k}: {s['percent']:+.1f} % (target <= {s['target_percent']:g} %) -> {'met' if s['met'] else 'NOT met'} ({agree})"
              f"; per round against that round's off run: {rounds} % (median {s['median_per_round_percent']:+.1f} %)")


def report(results: dict) -> None:
    """The table, then the issue's targets against the measurements."""
    eager, session = results["in_process_eager"], results["in_process_session"]
    fastest = min(eager["p50_ms"], session["p50_ms"])
    print(f"machine: {results['machine']}\ndate: {results['date']}\nmodel: {results['model']}")
    print("\n| setting | 1-client p50 ms | 1-client p99 ms | p50 over fastest in-process ms | 1 client /s | 8 clients /s | 32 clients /s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| in-process, eager signature call | {eager['p50_ms']:.2f} | {eager['p99_ms']:.2f} | - | - | - | - |")
    print(f"| in-process, the server's session callable | {session['p50_ms']:.2f} | {session['p99_ms']:.2f} | - | - | - | - |")
    plain = results.get("in_process_session_default_inlining")
    if plain:
        print(f"| in-process, session callable, --inline_all_functions=false | {plain['p50_ms']:.2f} | {plain['p99_ms']:.2f} | - | - | - | - |")
    errors = 0
    floor = results.get("grpc_floor")
    if floor:
        lat = floor["latency_1_client"]
        print(f"| grpc.aio floor: prebuilt answer, no model ({floor['client']}) | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | - | - | - "
              f"| {floor['clients_32']['per_s']:,.0f} |")
    cpp_floor = results.get("grpc_cpp_floor")
    if cpp_floor:
        lat = cpp_floor["latency_1_client"]
        print(f"| gRPC C++ floor: prebuilt answer, no model (loadgen) | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | - | - | - "
              f"| {cpp_floor['clients_32']['per_s']:,.0f} |")
    for key in ("batching_off", "batching_on"):
        for client, label in (("python_client", "Python stubs"), ("loadgen", "bench/loadgen (C++)")):
            r = results[key].get(client)
            if r is None:
                continue
            rates = [t["per_s"] for t in r["throughput"]]
            errors += sum(t["errors"] for t in r["throughput"]) + r["latency_1_client"].get("errors", 0)
            print(_row(f"embedpipe serve, {key.replace('_', ' ')}, {label}", r["latency_1_client"], rates, fastest))
    print(f"\nfailed requests: {errors}")
    for key in ("batching_off", "batching_on"):
        runs = results[key].get("loadgen", {}).get("latency_runs", [])
        if runs:
            print(f"loadgen 1-client runs, {key.replace('_', ' ')}: p50 " + ", ".join(f"{r['p50_ms']:.2f}" for r in runs) + " ms (median run in the table)")
    if results.get("batch_timeout_sweep"):
        print("\n| batch_timeout_micros | 1 client p50 ms | 1 client /s | 32 clients p50 ms | 32 clients /s |\n|---:|---:|---:|---:|---:|")
        for r in results["batch_timeout_sweep"]:
            one, many = r["one_client"], r["clients_32"]
            print(f"| {r['batch_timeout_micros']} | {one['p50_ms']:.2f} | {one['per_s']:,.0f} | {many['p50_ms']:.2f} | {many['per_s']:,.0f} |")
    print(f"\nbatching on = --max_batch_size=32 --batch_timeout_micros={results['batch_timeout_micros']} --num_batch_threads=1")
    client = "loadgen" if "loadgen" in results["batching_off"] else "python_client"
    lat = results["batching_off"][client]["latency_1_client"]
    batched = results["batching_on"][client]["throughput"][-1]
    rate = batched["per_s"]
    print(f"\nissue targets ({client} rows):")
    for name, value, target, ok in (
        ("p50, 1 client, ms", lat["p50_ms"], "<= 1.0", lat["p50_ms"] <= 1.0),
        ("p99, 1 client, ms", lat["p99_ms"], "<= 3.0", lat["p99_ms"] <= 3.0),
        ("p50 over the in-process SavedModel signature call (eager signatures[...]), ms", lat["p50_ms"] - eager["p50_ms"], "<= 0.5",
         lat["p50_ms"] - eager["p50_ms"] <= 0.5),
        ("p50 over the fastest in-process call (stricter), ms", lat["p50_ms"] - fastest, "<= 0.5", lat["p50_ms"] - fastest <= 0.5),
        ("predictions/s, 32 clients, batching on", rate, ">= 2,000", rate >= 2000),
    ):
        print(f"  {name}: {value:,.2f} (target {target}) -> {'met' if ok else 'NOT met'}")
    if floor and floor["client"] == client:
        print(f"  for scale: the grpc.aio floor alone is {floor['latency_1_client']['p50_ms']:.2f} ms p50 and "
              f"{floor['clients_32']['per_s']:,.0f}/s at 32 clients; the server adds {lat['p50_ms'] - floor['latency_1_client']['p50_ms']:.2f} ms p50 to it")
    if cpp_floor and floor and floor["client"] == client:
        print(f"  for scale: gRPC C++ answering the same prebuilt response is {cpp_floor['latency_1_client']['p50_ms']:.2f} ms p50 and "
              f"{cpp_floor['clients_32']['per_s']:,.0f}/s; grpc.aio's Python server costs "
              f"{floor['latency_1_client']['p50_ms'] - cpp_floor['latency_1_client']['p50_ms']:.2f} ms p50 more per request")


if __name__ == "__main__":
    main()
