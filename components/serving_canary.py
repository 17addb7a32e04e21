"""ServingCanary: serve the candidate model on a live gRPC server before the Pusher may push it.

TFX's InfraValidator launches TF Serving only through Docker or a KFP v1 pod, neither of which
exists here, so this component does the same job with the project's TF Serving-compatible server
(serving/): it copies the trained model, writes warmup requests into the copy
(``assets.extra/tf_serving_warmup_requests``, replayed by any TF Serving at load), starts
``python -m serving.server`` on it in a subprocess, waits for AVAILABLE through GetModelStatus,
sends real examples of the eval split (that split only: the warmup requests ship inside the
model, so they must not be examples it was fitted or selected on) through Predict and Classify,
compares the answers with the model's own in-process scores, stops the server with SIGTERM (it
must drain and exit 0), and writes an InfraBlessing. The Pusher takes the warmed copy and needs both blessings.

Every model path goes through TensorFlow's file system layer, so the pipeline root may be a
bucket: the server serves a scratch copy laid out as TF Serving wants it (``<base>/1/``) next to
the blessing in the same store, removed when the canary ends; only its log is local.
"""

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

import tensorflow as tf
from absl import logging
from tfx.components.util import model_utils
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Examples, InfraBlessing, Model, ModelBlessing
from tfx.utils import io_utils, path_utils

from embedconfig.config import EVAL
from serving.parent_death import PARENT_ENV
from serving.servable import WARMUP_FILE

SCRATCH_DIR = "canary_base"  # the served copy, <blessing>/canary_base/1, removed when the canary ends
LOG_PREFIX = "embedpipe-canary-"  # + the canary's PID: the server's local log, removed when the canary ends


def _eval_examples(examples_uri: str, count: int) -> list[bytes]:
    """The first ``count`` serialized examples of ExampleGen's eval split."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{EVAL}", "*")))
    if not files:
        raise RuntimeError(f"ServingCanary: no eval split under {examples_uri}")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return [r.numpy() for r in dataset]


def write_warmup_requests(model_dir: str, serialized: list[bytes], model_name: str) -> str:
    """Write PredictionLogs (Predict on serving_default, Classify on classify) TF Serving replays at load."""
    from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(model_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name, predict.model_spec.signature_name = model_name, "serving_default"
        predict.inputs["examples"].CopyFrom(tf.make_tensor_proto(serialized, dtype=tf.string))
        writer.write(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=predict)).SerializeToString())
        classify = classification_pb2.ClassificationRequest()
        classify.model_spec.name, classify.model_spec.signature_name = model_name, "classify"
        for s in serialized:
            classify.input.example_list.examples.add().ParseFromString(s)
        log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=classify))
        writer.write(log.SerializeToString())
    return path


def _free_port() -> int:
    import portpicker

    return portpicker.pick_unused_port()


def _wait_available(client, process: subprocess.Popen, timeout: float) -> None:
    import grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the model server exited with code {process.returncode} before the model was AVAILABLE")
        try:
            state = client.versions().get(1)
            if state == "AVAILABLE":
                return
            if state == "END":  # loading failed; the server reports why in GetModelStatus and its log
                raise RuntimeError("the server could not load the model (GetModelStatus: END)")
        except grpc.RpcError:
            pass  # not listening yet, or the model is still loading
        time.sleep(0.5)
    raise RuntimeError(f"the model was not AVAILABLE within {timeout:.0f} s")


def _in_process_scores(model_dir: str, serialized: list[bytes]) -> list[float]:
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    return signature(examples=tf.constant(serialized))["probability"].numpy().reshape(-1).tolist()


def start_model_server(base: str, model_name: str, port: int, log_path: str) -> subprocess.Popen:
    """``python -m serving.server`` on ``base``, on 127.0.0.1 only, dying with this process; output to ``log_path``."""
    command = [sys.executable, "-m", "serving.server", f"--port={port}", "--grpc_host=127.0.0.1", f"--model_name={model_name}",
               f"--model_base_path={base}", "--file_system_poll_wait_seconds=0"]
    with open(log_path, "w") as log_file:  # a local log: the one file the canary keeps outside the store
        # the server asks for SIGKILL when this process dies (serving/parent_death.py: not a
        # preexec_fn, which forks a process running gRPC threads)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", PARENT_ENV: str(os.getpid())}
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)


class _InProcessError(Exception):
    """The model failed in this process (so it is not servable either)."""


def _serve_and_ask(base: str, model_name: str, serialized: list[bytes], timeout: float, log_path: str,
                   meanwhile: Callable[[], list[float]]) -> dict:
    """Serve ``base`` (version 1) in a subprocess and call ``meanwhile()`` while it starts; its
    Predict and Classify scores, ``meanwhile``'s result, start-up time and SIGTERM exit code."""
    from serving.client import ModelClient

    port = _free_port()
    started = time.monotonic()
    process = start_model_server(base, model_name, port, log_path)
    client = ModelClient(f"127.0.0.1:{port}", model_name)
    try:
        # The server spends its first seconds importing TensorFlow and loading the model, on one
        # core: the in-process scores (another model load) overlap with it on the other.
        expected = meanwhile()
        _wait_available(client, process, timeout)
        ready_seconds = time.monotonic() - started
        predicted = client.predict_serialized(serialized)
        classified = client.classify_serialized(serialized)
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    return {"expected": expected, "predicted": predicted, "classified": classified, "ready_seconds": ready_seconds,
            "exit_code": exit_code}


def run_canary(model_dir: str, serialized: list[bytes], model_name: str, tolerance: float, timeout: float, scratch: str) -> dict:
    """Serve ``model_dir`` as version 1, compare served and in-process scores; a report dict.

    ``scratch``: a directory that does not exist yet, in any file system, where the model is
    copied to ``scratch/1`` for the server; removed before returning.

    ``problems`` lists what went wrong (empty: the canary passed); a model that does not load, in
    process or in the server, or a server that fails a request is a problem, not an exception,
    so the caller can refuse the model with the reason and the server's log.
    """
    import grpc

    report = {"problems": [], "max_abs_diff": None, "ready_seconds": None, "examples": len(serialized), "server_log": ""}

    def in_process_scores() -> list[float]:
        try:
            return _in_process_scores(model_dir, serialized)
        except Exception as e:  # a SavedModel TensorFlow cannot load or run: not servable either
            raise _InProcessError(f"{type(e).__name__}: {e}") from e

    log_fd, log_path = tempfile.mkstemp(prefix=f"{LOG_PREFIX}{os.getpid()}-", suffix=".log")
    os.close(log_fd)
    try:
        io_utils.copy_dir(model_dir, os.path.join(scratch, "1"))
        try:
            served = _serve_and_ask(scratch, model_name, serialized, timeout, log_path, meanwhile=in_process_scores)
        except _InProcessError as e:
            report["problems"].append(f"the model does not run in-process: {e}")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            report["problems"].append(f"the model server failed: {e}")
        except grpc.RpcError as e:
            report["problems"].append(f"the model server answered {e.code().name}: {e.details()}")
        with open(log_path) as f:
            report["server_log"] = f.read()[-4000:]
    finally:
        if tf.io.gfile.exists(scratch):
            tf.io.gfile.rmtree(scratch)
        os.remove(log_path)
    if report["problems"]:
        return report
    expected = served["expected"]
    worst = max(max(abs(a - b) for a, b in zip(served["predicted"], expected, strict=True)),
                max(abs(a - b) for a, b in zip(served["classified"], expected, strict=True)))
    report["max_abs_diff"], report["ready_seconds"] = worst, served["ready_seconds"]
    if worst > tolerance:
        report["problems"].append(f"served scores differ from in-process scores by {worst:.3g} (> {tolerance:g})")
    if served["exit_code"] != 0:
        report["problems"].append(f"the server exited with code {served['exit_code']} after SIGTERM (expected 0)")
    return report


def remove_leftovers(blessing_uri: str, older_than_seconds: float = 3600) -> list[str]:
    """Remove what killed canaries left: served copies in earlier executions' blessings
    (``<root>/ServingCanary/blessing/<execution>/canary_base``) untouched for ``older_than_seconds``
    (a canary that is still running, of another run on the same root, is younger), and local
    server logs of canary processes that no longer exist. The paths removed."""
    removed = []
    for scratch in tf.io.gfile.glob(os.path.join(os.path.dirname(blessing_uri), "*", SCRATCH_DIR)):
        if os.path.dirname(scratch) == blessing_uri.rstrip("/"):
            continue
        marker = os.path.join(scratch, "1", "saved_model.pb")
        age = time.time() - tf.io.gfile.stat(marker).mtime_nsec / 1e9 if tf.io.gfile.exists(marker) else float("inf")
        if age >= older_than_seconds:
            tf.io.gfile.rmtree(scratch)
            removed.append(scratch)
    for log_path in glob.glob(os.path.join(tempfile.gettempdir(), f"{LOG_PREFIX}*.log")):  # local by design
        pid = os.path.basename(log_path)[len(LOG_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            os.remove(log_path)
            removed.append(log_path)
    if removed:
        logging.warning("ServingCanary: removed what killed canaries left behind: %s", ", ".join(removed))
    return removed


def _bless(blessing, blessed: bool, reason: str) -> None:
    blessing.set_int_custom_property("blessed", int(blessed))
    blessing.set_string_custom_property("reason", reason[:1000])
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "INFRA_BLESSED" if blessed else "INFRA_NOT_BLESSED"), "w") as f:
        f.write(reason + "\n")


@component
def ServingCanary(  # noqa: N802 -- TFX component naming
    model: InputArtifact[Model],
    model_blessing: InputArtifact[ModelBlessing],
    examples: InputArtifact[Examples],
    blessing: OutputArtifact[InfraBlessing],
    warmed_model: OutputArtifact[Model],
    model_name: Parameter[str],
    num_examples: Parameter[int] = 16,
    tolerance: Parameter[float] = 1e-5,
    timeout_seconds: Parameter[int] = 180,
) -> None:
    """Bless the model for serving only if a live server answers like the model does."""
    source = path_utils.serving_model_dir(model.uri)  # <uri>/Format-Serving, where the Trainer saved it
    target = path_utils.serving_model_dir(warmed_model.uri)
    if not model_utils.is_model_blessed(model_blessing):
        _bless(blessing, False, "skipped: the Evaluator did not bless this model")
        return
    serialized = _eval_examples(examples.uri, num_examples)
    io_utils.copy_dir(source, target)
    write_warmup_requests(target, serialized, model_name)
    remove_leftovers(blessing.uri)
    report = run_canary(target, serialized, model_name, tolerance, timeout_seconds, scratch=os.path.join(blessing.uri, SCRATCH_DIR))
    for key in ("max_abs_diff", "ready_seconds"):
        if report[key] is not None:
            blessing.set_float_custom_property(key, report[key])
    if report["problems"]:
        logging.error("ServingCanary: %s\nserver log:\n%s", "; ".join(report["problems"]), report["server_log"])
        _bless(blessing, False, "; ".join(report["problems"]))
    else:
        _bless(blessing, True, f"served {report['examples']} eval examples through Predict and Classify; "
                               f"max |served - in-process| = {report['max_abs_diff']:.2g}")
