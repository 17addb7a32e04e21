"""Prometheus metrics under TF Serving's names, served on the REST port (``--monitoring_config_file``).

TF Serving exports TensorFlow's monitoring counters through a Prometheus endpoint configured by a
``MonitoringConfig`` text proto (``prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }``).
Dashboards and alerts are written against its metric names, which start with a colon
(``:tensorflow:serving:request_count``); prometheus_client renames counters (``_total``), so
the few metrics kept here are written in the text exposition format directly:

- ``:tensorflow:cc:saved_model:load_attempt_count{model_path, status}`` (counter)
- ``:tensorflow:cc:saved_model:load_latency{model_path}`` (counter, microseconds)
- ``:tensorflow:serving:request_count{model_name, status}`` (counter)
- ``:tensorflow:serving:request_latency{model_name, API, entrypoint}`` (histogram, microseconds)

TensorFlow's batching counter, as TF's batch ops record it (tensorflow/core/kernels/batching_util/
batch_resource_base.cc; the op name here is the signature's):

- ``:tensorflow:serving:batching:processed_batch_size_v2{model_name, op_name, batch_size}`` (counter)

and one of this server's own (TF Serving has no request-log collector to count):

- ``:embedpipe:serving:request_log_records{model_name, outcome}`` (counter): sampled calls
  ``written``, ``dropped_queue_full`` or ``dropped_storage_error`` (serving/request_log.py)
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

DEFAULT_PATH = "/monitoring/prometheus/metrics"
# TF Serving's request latency buckets are exponential from 10 us; a coarser set keeps scrapes short.
LATENCY_BUCKETS_US = tuple(10 * 2**i for i in range(22))  # 10 us .. ~21 s


def _monitoring_config_class():
    """tensorflow.serving.MonitoringConfig (tensorflow_serving/config/monitoring_config.proto), which
    the tensorflow-serving-api wheel does not ship: the same two messages, built from a descriptor."""
    proto = descriptor_pb2.FileDescriptorProto(name="embedpipe/monitoring_config.proto", package="tensorflow.serving", syntax="proto3")
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    config = proto.message_type.add(name="MonitoringConfig")
    config.field.add(name="prometheus_config", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                     label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, type_name=".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


MonitoringConfig = _monitoring_config_class()


def prometheus_path(config_text: str, source: str) -> str | None:
    """The metrics path a MonitoringConfig text enables, or None; ValueError naming ``source`` if unreadable."""
    config = MonitoringConfig()
    try:
        text_format.Parse(config_text, config)
    except text_format.ParseError as e:
        raise ValueError(f"{source}: Error parsing text-format tensorflow.serving.MonitoringConfig: {e}") from e
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PATH


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped, strict=True)) + "}"


@dataclass
class _Counter:
    name: str
    help: str
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.label_names, k)} {v:g}" for k, v in sorted(self.values.items())]
        return lines


@dataclass
class _Histogram:
    name: str
    help: str
    label_names: tuple[str, ...]
    buckets: tuple[float, ...] = LATENCY_BUCKETS_US

    def __post_init__(self) -> None:
        self.values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        cells = self.values.setdefault(labels, [0.0] * (len(self.buckets) + 3))  # buckets, +Inf, sum, count
        cells[bisect.bisect_left(self.buckets, value)] += 1  # non-cumulative here, cumulative when rendered
        cells[-2] += value
        cells[-1] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, cells in sorted(self.values.items()):
            running = 0.0
            for bound, count in zip((*self.buckets, float("inf")), cells[:-2], strict=False):
                running += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f"{self.name}_bucket{_labels((*self.label_names, 'le'), (*labels, le))} {running:g}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {cells[-2]:g}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {cells[-1]:g}")
        return lines


class Metrics:
    """The server's metrics; every method is thread-safe and cheap (a lock and a dict update)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.load_attempts = _Counter(":tensorflow:cc:saved_model:load_attempt_count",
                                      "The number of times a SavedModel was successfully loaded.", ("model_path", "status"))
        self.load_latency = _Counter(":tensorflow:cc:saved_model:load_latency",
                                     "Latency in microseconds for SavedModels that were successfully loaded.", ("model_path",))
        self.request_count = _Counter(":tensorflow:serving:request_count",
                                      "The total number of requests.", ("model_name", "status"))
        self.request_latency = _Histogram(":tensorflow:serving:request_latency",
                                          "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
                                          ("model_name", "API", "entrypoint"))
        self.batch_sizes = _Counter(":tensorflow:serving:batching:processed_batch_size_v2",
                                    "Tracks the batch size on processing by model_name (if available).",
                                    ("model_name", "op_name", "batch_size"))
        self.request_log = _Counter(":embedpipe:serving:request_log_records",
                                    "Sampled requests by what became of their log record (not a TF Serving metric).",
                                    ("model_name", "outcome"))

    def model_loaded(self, path: str, ok: bool, seconds: float) -> None:
        """One load attempt of the SavedModel at ``path``."""
        with self._lock:
            self.load_attempts.add((path, "success" if ok else "fail"))
            if ok:
                self.load_latency.add((path,), seconds * 1e6)

    def request(self, model_name: str, api: str, entrypoint: str, status: str, seconds: float) -> None:
        """One request: its model, API (predict, classify, ...), entrypoint (GRPC, REST) and status code name."""
        with self._lock:
            self.request_count.add((model_name, status))
            self.request_latency.observe((model_name, api, entrypoint), seconds * 1e6)

    def batch_processed(self, model_name: str, signature: str, size: int) -> None:
        """One batch of ``size`` rows ran on a model's signature (serving/batching.py)."""
        with self._lock:
            self.batch_sizes.add((model_name, signature, str(size)))

    def request_logged(self, model_name: str, outcome: str, n: int = 1) -> None:
        """``n`` sampled calls' log records ended as ``outcome`` (serving/request_log.py)."""
        with self._lock:
            self.request_log.add((model_name, outcome), n)

    def request_log_count(self, model_name: str, outcome: str) -> int:
        """How many of a model's log records ended as ``outcome`` so far."""
        with self._lock:
            return int(self.request_log.values.get((model_name, outcome), 0))

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        with self._lock:
            lines = [line for metric in (self.load_attempts, self.load_latency, self.request_count, self.request_latency,
                                                     self.batch_sizes, self.request_log)
                     for line in metric.render()]
        return "\n".join(lines) + "\n"
