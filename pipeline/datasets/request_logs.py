"""`embedpipe data from-logs`: logged requests joined with labels that arrived later -> the next span.

The server logs what it was asked (serving/request_log.py); whether the user clicked arrives later,
keyed by an id the client sent with the request (``data.key``, e.g. ``request_id``: in the
tf.Example, never read by the model). This joins the two and writes raw JSONL examples, the
config's features plus the label, into a span directory, so the loop serve -> log -> label ->
retrain runs with the daily retraining's spans.

Nothing is lost without a count: logged examples without a key, keys logged twice (the first is
kept: a client's retry), logged examples no label arrived for, labels for no logged request.
The labels are held in memory (one day's labels: a dict of key -> value).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow as tf

from embedconfig.config import ConfigError, PipelineConfig
from pipeline.monitor import MonitorError, log_files, log_records, served_examples

OUTPUT_FILE = "from-logs.jsonl"


@dataclass
class JoinCounts:
    """What the join did with every logged example and every label."""

    logged_examples: int = 0
    written: int = 0
    without_key: int = 0
    duplicate_keys: int = 0
    without_label: int = 0
    labels: int = 0
    labels_without_request: int = 0

    def render(self) -> str:
        """One line: written, and where every other example or label went."""
        return (f"{self.written} examples written from {self.logged_examples} logged; {self.without_label} without a label "
                f"(not written), {self.without_key} without the key, {self.duplicate_keys} with a key logged before "
                f"(kept the first); {self.labels} labels read, {self.labels_without_request} for no logged request")


def read_labels(path: str, key: str, label: str) -> dict[str, object]:
    """key -> label value from a JSONL file of ``{"<key>": ..., "<label>": ...}`` objects; a bad
    line raises ValueError naming file:line."""
    labels: dict[str, object] = {}
    with tf.io.gfile.GFile(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(row, dict) or key not in row or label not in row:
                raise ValueError(f"{where}: needs the key {key!r} (data.key) and the label {label!r} (label.name)")
            labels[str(row[key])] = row[label]
    return labels


def feature_values(example: tf.train.Example, name: str) -> list[bytes | int | float] | None:
    """The values of one feature of a tf.Example (of whichever list it holds); None when absent."""
    feature = example.features.feature.get(name)
    if feature is None:
        return None
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def _key_of(example: tf.train.Example, key: str) -> str | None:
    values = feature_values(example, key)
    if values is None or len(values) != 1:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def raw_row(example: tf.train.Example, config: PipelineConfig) -> dict[str, object]:
    """The config's features of a tf.Example as a JSONL row (as the data files hold them)."""
    row: dict[str, object] = {}
    for f in config.features:
        values = feature_values(example, f.name)
        if values is None:
            continue
        values = [v.decode() if isinstance(v, bytes) else int(v) for v in values]
        if f.kind == "sequence":
            row[f.name] = values
        elif values:
            row[f.name] = values[0]
    return row


def from_logs(config: PipelineConfig, logs: str, labels_path: str, output_dir: str) -> JoinCounts:
    """Join the logged requests under ``logs`` with ``labels_path`` by ``data.key``; write
    ``<output_dir>/from-logs.jsonl``; the counts."""
    if config.data.key is None:
        raise ConfigError("data.key", "is not set: name the column clients send to identify a request (e.g. request_id)")
    if config.data.format != "jsonl":
        raise ConfigError("data.format", f"is {config.data.format}; from-logs writes JSONL spans (data.format: jsonl)")
    files = log_files(logs)
    if not files:
        raise MonitorError(f"--logs {logs}: no complete request-log files")
    key, label = config.data.key, config.label.name
    labels = read_labels(labels_path, key, label)
    counts = JoinCounts(labels=len(labels))
    seen: set[str] = set()
    tf.io.gfile.makedirs(output_dir)
    with tf.io.gfile.GFile(os.path.join(output_dir, OUTPUT_FILE), "w") as out:
        for record in log_records(files):
            for serialized in served_examples(record, config)[1]:
                counts.logged_examples += 1
                example = tf.train.Example.FromString(serialized)
                request = _key_of(example, key)
                if request is None:
                    counts.without_key += 1
                elif request in seen:
                    counts.duplicate_keys += 1
                elif request not in labels:
                    seen.add(request)
                    counts.without_label += 1
                else:
                    seen.add(request)
                    out.write(json.dumps({**raw_row(example, config), label: labels[request]}) + "\n")
                    counts.written += 1
    counts.labels_without_request = len(set(labels) - seen)
    return counts
