"""Request logging: sampled calls and their answers written as TF Serving's ``PredictionLog`` records.

Configured as TF Serving configures it, per model in the ModelServerConfig::

    config { name: "m" base_path: "/models/m"
             logging_config { log_collector_config { filename_prefix: "/logs/m/requests" }
                              sampling_config { sampling_rate: 0.1 } } }

(or ``--request_log_file_prefix`` / ``--request_log_sampling_rate`` for the single-model case).
Open-source TF Serving parses this but ships no log collector (tensorflow/serving#408); this
server is the collector: each sampled Predict / Classify / Regress / MultiInference call that
succeeded is written with its response, as the warmup files and TFX's BulkInferrer write them, into
TFRecord files named ``<prefix>-<UTC time>-<host>-<pid>-<seq>.tfrecord``. A file is written under
``.tmp`` and renamed when it is closed (by size, by age, at shutdown), so a reader that globs
``<prefix>*.tfrecord`` sees only complete files, local or in a bucket.

Logging never blocks or fails a request: the request thread draws the sample and puts the call on
a bounded queue; one writer thread per model builds and writes the records. A full queue or a
storage error drops records, and every record is counted on the Prometheus endpoint
(``:embedpipe:serving:request_log_records{model_name, outcome}``).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import invalid
from serving.monitoring import Metrics

log = logging.getLogger("embedpipe.serving")

LOG_SUFFIX = ".tfrecord"
OPEN_SUFFIX = ".tmp"  # a file being written; renamed to LOG_SUFFIX when complete
COLLECTOR_TYPES = ("", "tfrecord")  # LogCollectorConfig.type values this server writes
QUEUE_SIZE = 10_000  # calls waiting for the writer; beyond, a call is dropped (and counted)
MAX_FILE_BYTES = 64 << 20
MAX_FILE_SECONDS = 600.0  # an open file older than this is closed, so a reader sees it within ten minutes
RETRY_SECONDS = 5.0  # after a storage error, records are dropped (and counted) this long before the next try
# The writer wakes this often and writes everything queued since. Woken for every record instead,
# it took the GIL from the request threads once per call: 32 batched clients lost 7.3 % of their
# throughput at sampling 1.0, against 2.9 % draining every 50 ms (bench/serving_latency.py's
# variants, 3 alternating rounds; bench/RESULTS.md, "Request logging's cost to serving").
DRAIN_SECONDS = 0.05

# outcome label values of the records counter
WRITTEN, QUEUE_FULL, STORAGE_ERROR = "written", "dropped_queue_full", "dropped_storage_error"


@dataclass(frozen=True)
class LogSettings:
    """Where and how much one model logs."""

    filename_prefix: str
    sampling_rate: float
    max_file_bytes: int = MAX_FILE_BYTES
    max_file_seconds: float = MAX_FILE_SECONDS


def settings_of(config: model_server_config_pb2.ModelConfig) -> LogSettings | None:
    """A model config's logging settings, None when it does not log; ServingError (INVALID_ARGUMENT)
    for a collector this server does not have or a rate outside [0, 1]."""
    if not config.HasField("logging_config"):
        return None
    logging_config = config.logging_config
    collector = logging_config.log_collector_config
    if collector.type not in COLLECTOR_TYPES:
        raise invalid(f"model {config.name}: logging_config: no log collector of type {collector.type!r} "
                      f"(this server writes TFRecord files: leave type empty or set it to 'tfrecord')")
    if not collector.filename_prefix:
        raise invalid(f"model {config.name}: logging_config.log_collector_config.filename_prefix is empty")
    rate = logging_config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise invalid(f"model {config.name}: logging_config.sampling_config.sampling_rate must be in [0, 1], got {rate:g}")
    return LogSettings(collector.filename_prefix, rate) if rate > 0 else None


def add_logging_config(config: model_server_config_pb2.ModelServerConfig, filename_prefix: str, sampling_rate: float) -> None:
    """What ``--request_log_file_prefix`` / ``--request_log_sampling_rate`` stand for: the one model logs."""
    for entry in config.model_config_list.config:
        entry.logging_config.log_collector_config.filename_prefix = filename_prefix
        entry.logging_config.sampling_config.sampling_rate = sampling_rate


def prediction_log(request: Any, response: Any) -> prediction_log_pb2.PredictionLog:
    """The PredictionLog of one call: the request and response in the field of its kind, and the
    metadata TF Serving writes (the answering model spec, with its version)."""
    record = prediction_log_pb2.PredictionLog()
    field = _LOG_FIELD[type(request)]
    entry = getattr(record, field)
    entry.request.CopyFrom(request)
    entry.response.CopyFrom(response)
    if isinstance(response, inference_pb2.MultiInferenceResponse):
        if response.results:
            record.log_metadata.model_spec.CopyFrom(response.results[0].model_spec)
    else:
        record.log_metadata.model_spec.CopyFrom(response.model_spec)
    return record


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2): tag, length, payload."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def predict_log_bytes(request: bytes, response: bytes, model_spec: bytes) -> bytes:
    """The serialized PredictionLog of a Predict call from the bytes gRPC received and sent: the same
    record ``prediction_log`` builds (tests/test_request_log.py), without copying or serializing
    either message again. PredictionLog{log_metadata=1 {model_spec=1}, predict_log=6 {request=1, response=2}}."""
    return (_length_delimited(1, _length_delimited(1, model_spec))
            + _length_delimited(6, _length_delimited(1, request) + _length_delimited(2, response)))


_LOG_FIELD = {
    predict_pb2.PredictRequest: "predict_log",
    classification_pb2.ClassificationRequest: "classify_log",
    regression_pb2.RegressionRequest: "regress_log",
    inference_pb2.MultiInferenceRequest: "multi_inference_log",
}

_STOP = object()


class RequestLogger:
    """One model's log: a sampler in the request thread, a bounded queue, a writer thread."""

    def __init__(self, model_name: str, settings: LogSettings, metrics: Metrics, queue_size: int = QUEUE_SIZE) -> None:
        self.model_name = model_name
        self.settings = settings
        self._metrics = metrics
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._random = random.Random()
        self._writer: tf.io.TFRecordWriter | None = None
        self._open_path = ""
        self._opened_at = 0.0
        self._bytes = 0
        self._records = 0
        self._sequence = 0
        self._retry_after = 0.0
        self._wake = threading.Event()  # set by close(): drain now
        self._thread = threading.Thread(target=self._run, name=f"embedpipe-request-log-{model_name}", daemon=True)
        self._thread.start()

    def log(self, request: Any, response: Any) -> None:
        """Sample the call; if drawn, queue it for the writer (never blocks: a full queue drops and counts)."""
        if self._random.random() < self.settings.sampling_rate:
            self._offer((request, response))

    def log_predict_bytes(self, request: bytes, response: bytes, model_spec: bytes) -> None:
        """``log`` for a Predict call whose request and response are at hand as wire bytes (gRPC)."""
        if self._random.random() < self.settings.sampling_rate:
            self._offer((request, response, model_spec))

    def _offer(self, item: tuple) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._count(QUEUE_FULL)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, close the open file (renamed to its final name), stop the thread."""
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the writer thread
    def _count(self, outcome: str, n: int = 1) -> None:
        self._metrics.request_logged(self.model_name, outcome, n)

    def _run(self) -> None:
        """Every DRAIN_SECONDS (or at once when closing): write everything queued, rotate when due."""
        while True:
            self._wake.wait(DRAIN_SECONDS)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._close_file()
                    return
                try:
                    self._write(predict_log_bytes(*item) if len(item) == 3 else prediction_log(*item).SerializeToString())
                except Exception as e:  # a record that cannot be built is dropped, never the thread
                    log.error("request log of model %s: record dropped: %s", self.model_name, e)
                    self._count(STORAGE_ERROR)
            self._rotate_if_due()

    def _rotate_if_due(self) -> None:
        if self._writer is not None and (self._bytes >= self.settings.max_file_bytes
                                         or time.monotonic() - self._opened_at >= self.settings.max_file_seconds):
            self._close_file()

    def _write(self, record: bytes) -> None:
        self._rotate_if_due()
        if self._writer is None and not self._open_file():
            self._count(STORAGE_ERROR)
            return
        try:
            self._writer.write(record)
        except tf.errors.OpError as e:
            self._storage_error(f"write to {self._open_path}", e)
            self._abandon_file()
            self._count(STORAGE_ERROR)
            return
        self._bytes += len(record) + 16  # TFRecord framing: length, two CRCs
        self._records += 1

    def _file_name(self) -> str:
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return f"{self.settings.filename_prefix}-{stamp}-{socket.gethostname()}-{os.getpid()}-{self._sequence:05d}"

    def _open_file(self) -> bool:
        if time.monotonic() < self._retry_after:
            return False
        path = self._file_name() + LOG_SUFFIX + OPEN_SUFFIX
        try:
            tf.io.gfile.makedirs(os.path.dirname(path) or ".")
            self._writer = tf.io.TFRecordWriter(path)
        except (tf.errors.OpError, OSError) as e:
            self._storage_error(f"open {path}", e)
            return False
        self._open_path, self._opened_at, self._bytes, self._records = path, time.monotonic(), 0, 0
        return True

    def _close_file(self) -> None:
        """Close and rename the open file; its records count as written only once the rename landed."""
        if self._writer is None:
            return
        records, path = self._records, self._open_path
        try:
            self._writer.close()
            tf.io.gfile.rename(path, path[: -len(OPEN_SUFFIX)], overwrite=True)
        except (tf.errors.OpError, OSError) as e:
            self._storage_error(f"close {path}", e)
            self._count(STORAGE_ERROR, records)
        else:
            self._count(WRITTEN, records)
        self._writer = None

    def _abandon_file(self) -> None:
        """After a failed write: the open file's records are lost (counted), the next record opens a new file."""
        records, self._records = self._records, 0
        try:
            self._writer.close()
        except Exception:  # the file is already broken
            pass
        self._writer = None
        self._count(STORAGE_ERROR, records)

    def _storage_error(self, what: str, error: Exception) -> None:
        self._retry_after = time.monotonic() + RETRY_SECONDS
        message = error.message if isinstance(error, tf.errors.OpError) else str(error)
        log.error("request log of model %s: cannot %s (%s); records are dropped and counted for %gs, then retried",
                  self.model_name, what, message, RETRY_SECONDS)


class RequestLogs:
    """Every model's RequestLogger, kept in step with the ModelServerConfig (at start and each reload)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._loggers: dict[str, RequestLogger] = {}

    def check(self, config: model_server_config_pb2.ModelServerConfig) -> dict[str, LogSettings]:
        """Each logging model's settings; ServingError for a logging_config this server cannot apply."""
        wanted = {}
        for entry in config.model_config_list.config:
            settings = settings_of(entry)
            if settings is not None:
                wanted[entry.name] = settings
        return wanted

    def update(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Start loggers for models that now log, close those of models that no longer do (or changed)."""
        wanted = self.check(config)
        with self._lock:
            stale = [name for name, logger in self._loggers.items() if wanted.get(name) != logger.settings]
            closing = [self._loggers.pop(name) for name in stale]
            for name, settings in wanted.items():
                if name not in self._loggers:
                    self._loggers[name] = RequestLogger(name, settings, self._metrics)
                    log.info("model %s: logging %g of its requests under %s", name, settings.sampling_rate, settings.filename_prefix)
        for logger in closing:
            logger.close()

    def log(self, request: Any, response: Any) -> None:
        """Offer a successful call to its model's logger (the model the request named)."""
        logger = self._loggers.get(_model_name(request))
        if logger is not None:
            logger.log(request, response)

    def logger(self, model_name: str) -> RequestLogger | None:
        """The model's logger, None when it does not log."""
        return self._loggers.get(model_name)

    def close(self) -> None:
        """Close every logger: queued records written, files renamed (at shutdown, after the last request)."""
        with self._lock:
            closing, self._loggers = list(self._loggers.values()), {}
        for logger in closing:
            logger.close()


def _model_name(request: Any) -> str:
    if isinstance(request, inference_pb2.MultiInferenceRequest):
        return request.tasks[0].model_spec.name if request.tasks else ""
    return request.model_spec.name
