"""``embedpipe schema infer``: a first schema from the data, already shaped the way runs need it.

TFDV infers the schema from statistics of the raw examples (JSONL and CSV read with the same
reader as the pipeline's ExampleGen, TFRecord files as they are); then the parts a run relies on are set from the config, not guessed:
- ``id`` features and the label have exactly one value (``shape [1]``: dense in Transform);
- ``sequence`` features have any number of values, including none (sparse in Transform);
- configured features get no string domain: vocabularies are Transform's job, and a domain would
  turn every new user or item into an anomaly;
- the label is left out of the ``SERVING`` environment.
A person should still review presence and any extra columns before curating it into ``schema/``.
"""

from __future__ import annotations

import os
import tempfile
from itertools import islice
from typing import Iterator

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from components.example_gen import input_patterns, matching_files
from embedconfig.config import PipelineConfig
from records.raw_records import column_specs, read_file_examples

MAX_ROWS = 200_000


def _input_files(config: PipelineConfig) -> list[str]:
    base, patterns = input_patterns(config.data)
    files = sorted({f for p in patterns.values() for f in matching_files(base, p)})
    if not files:
        raise FileNotFoundError(f"data.path: no files match {config.data.path}")
    return files


def _raw_examples(config: PipelineConfig, path: str) -> Iterator[bytes]:
    """Serialized tf.Examples of one input file, in any of the config's formats."""
    if config.data.format == "tfrecord":
        compression = "GZIP" if path.endswith(".gz") else ""
        for record in tf.data.TFRecordDataset(path, compression_type=compression):
            yield record.numpy()
        return
    specs = column_specs(config)
    for example in read_file_examples(path, config.data.format, specs, config.data.list_delimiter):
        yield example.SerializeToString()


def curate(schema: schema_pb2.Schema, config: PipelineConfig) -> list[str]:
    """Apply the config's facts to an inferred schema in place; return notes for the person."""
    notes = []
    declared = {f.name: f for f in config.features}
    by_name = {f.name: f for f in schema.feature}
    for name in [*declared, config.label.name]:
        if name not in by_name:
            notes.append(f"'{name}' is in the config but never appears in the data")
    for feature in schema.feature:
        f = declared.get(feature.name)
        if f is None and feature.name != config.label.name:
            notes.append(f"'{feature.name}' is in the data but not in the config: kept, check it")
            continue
        feature.ClearField("domain")
        if feature.type == schema_pb2.INT and feature.HasField("bool_domain"):
            # TFDV infers bool_domain for 0/1 integers; StatisticsGen, given that schema, computes
            # the feature as categorical and ExampleValidator then lets a 2 pass (tests/test_schema_gate.py).
            # An int_domain it checks.
            feature.ClearField("bool_domain")
            feature.int_domain.min, feature.int_domain.max = 0, 1
            notes.append(f"'{feature.name}' holds 0/1: int_domain {{min: 0 max: 1}}, which TFDV enforces")
        feature.ClearField("value_count")
        feature.ClearField("shape")
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        if f is not None and f.kind == "sequence":
            feature.value_count.min = 0
        else:
            feature.shape.dim.add().size = 1
    for domain in [d.name for d in schema.string_domain]:
        if domain in declared:
            notes.append(f"dropped the string domain of '{domain}' (Transform builds its vocabulary)")
    kept = [d for d in schema.string_domain if d.name not in declared]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)
    schema.ClearField("default_environment")
    schema.default_environment.extend(["TRAINING", "SERVING"])
    if config.label.name in by_name:
        by_name[config.label.name].ClearField("not_in_environment")
        by_name[config.label.name].not_in_environment.append("SERVING")
    return notes


def infer_schema_file(config: PipelineConfig, output: str, max_rows: int = MAX_ROWS) -> list[str]:
    """Infer, curate and write the schema as text proto; return notes for the person."""
    with tempfile.TemporaryDirectory() as tmp:
        records = os.path.join(tmp, "examples.tfrecord")
        rows = 0
        with tf.io.TFRecordWriter(records) as writer:
            for path in _input_files(config):
                for serialized in islice(_raw_examples(config, path), max_rows - rows):
                    writer.write(serialized)
                    rows += 1
        stats = tfdv.generate_statistics_from_tfrecord(records)
    schema = tfdv.infer_schema(stats, infer_feature_shape=False)
    notes = [f"inferred from {rows} examples"] + curate(schema, config)
    tf.io.gfile.makedirs(os.path.dirname(output) or ".")
    tfdv.write_schema_text(schema, output)
    return notes
