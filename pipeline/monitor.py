"""`embedpipe monitor`: the served model's logged requests against the data it was trained on.

The server logs sampled calls as PredictionLog files (serving/request_log.py). This reads them,
takes out the tf.Examples of every call kind (a Predict's ``examples`` tensor or its raw feature
tensors, a Classify / Regress / MultiInference input with its context merged as the server merged
it), and, for each model version that answered:

- computes TFDV statistics of the served examples, and of the version's training data: the train
  split of the Examples its Trainer read, found through ML Metadata from the push that made the
  version (PushedModel ``pushed_version`` -> Pusher -> ... -> Trainer -> Examples), else through
  the training record inside the pushed model (its ``train_files``: what a compiled pipeline or
  a copied model has), or a statistics file given with ``--baseline-statistics``;
- measures every feature with TFDV's skew comparators (L-infinity for a string feature,
  Jensen-Shannon divergence for an int one; ``monitoring.skew`` thresholds), the same measure the
  drift gate uses between spans (components/drift_gate.measure_drift);
- counts, for every feature, the share of served tokens the version's vocabulary does not know
  (the OOV rate), and the same share in the training data.

Statistics, TFDV's Anomalies and a JSON summary are written under the output directory
(``<pipeline root>/monitor/<UTC time>/`` by default), where a report or a later run reads them.
Both sides run in one Beam pipeline on the config's runner.
"""

from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_serving.apis import prediction_log_pb2
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples
from tfx.utils import io_utils
from tfx_bsl.public import tfxio

from components.drift_gate import DRIFT_FILE, measure_drift
from components.lineage import read_only_store
from embedconfig.config import TRAIN, FeatureConfig, PipelineConfig
from models.warm_start import MODEL_INFO_DIR, VOCABULARIES_DIR, read_vocabulary
from pipeline.beam_mode import direct_mode
from serving.request_log import LOG_SUFFIX
from serving.servable import examples_from_input

SKEW_EXIT_CODE = 4
SERVED, TRAINED = "served", "trained"


class MonitorError(ValueError):
    """What monitor needs is missing: no log files, no baseline for a version."""


# ------------------------------------------------------------------ reading the logs
def log_files(prefix: str) -> list[str]:
    """The complete log files under a request-log prefix (files being written end in .tmp)."""
    return sorted(tf.io.gfile.glob(prefix + "*" + LOG_SUFFIX))


def _raw_examples(inputs: Any, config: PipelineConfig) -> list[bytes]:
    """tf.Examples from a Predict's raw feature tensors (``predict_raw``): one per row, the
    signature's padding ("" and -1, models/signatures.py) dropped from list features."""
    columns = {name: tf.make_ndarray(inputs[name]) for name in inputs if name in {f.name for f in config.features}}
    rows = len(next(iter(columns.values()))) if columns else 0
    serialized = []
    for i in range(rows):
        example = tf.train.Example()
        for name, column in columns.items():
            values = np.atleast_1d(column[i])
            feature = example.features.feature[name]
            if values.dtype.kind in "iu":
                feature.int64_list.value.extend(int(v) for v in values if v != -1)
            else:
                feature.bytes_list.value.extend(v for v in values if v != b"")
        serialized.append(example.SerializeToString())
    return serialized


def served_examples(record: bytes, config: PipelineConfig) -> tuple[int, list[bytes]]:
    """(the version that answered, the serialized tf.Examples it scored) of one PredictionLog record."""
    log = prediction_log_pb2.PredictionLog.FromString(record)
    version = log.log_metadata.model_spec.version.value
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        inputs = log.predict_log.request.inputs
        if "examples" in inputs:  # a string tensor's values are its string_val, in row-major order
            return version, list(inputs["examples"].string_val)
        return version, _raw_examples(inputs, config)
    if kind in ("classify_log", "regress_log", "multi_inference_log"):
        return version, examples_from_input(getattr(log, kind).request.input)
    return version, []


def log_records(files: list[str]) -> Iterator[bytes]:
    """Every record of ``files``, in order. Read in batches: one eager tf.data element per record took
    117 us a record with its parse (200K logged calls in 23.4 s; most of a 1M-call monitor's 197 s),
    batches of 4,096 7.5 us (1.5 s)."""
    for batch in tf.data.TFRecordDataset(files).batch(4096).as_numpy_iterator():
        yield from batch


def versions_answering(files: list[str]) -> collections.Counter:
    """Logged calls per answering version (a first, cheap pass: the versions decide what to compare with)."""
    calls: collections.Counter = collections.Counter()
    for record in log_records(files):
        log = prediction_log_pb2.PredictionLog()
        log.MergeFromString(record)
        calls[log.log_metadata.model_spec.version.value] += 1
    return calls


# ------------------------------------------------------------------ the baseline
@dataclass
class Baseline:
    """What one served version is compared with."""

    version: int
    model_dir: str  # the served version's directory (its vocabularies)
    training_files: list[str] = field(default_factory=list)  # the train split files the Trainer read
    statistics_path: str = ""  # or the training statistics, given
    source: str = ""


def trained_on(metadata_path: str, version: int) -> Baseline | None:
    """The pushed model directory and the train-split files of the Trainer run that made ``version``,
    through ML Metadata; None when no push made it."""
    if not tf.io.gfile.exists(metadata_path):
        return None
    store = read_only_store(metadata_path)
    types = {t.id: t.name for t in store.get_artifact_types()}
    pushes = [a for a in store.get_artifacts_by_type("PushedModel")
              if a.custom_properties.get("pushed_version") is not None
              and a.custom_properties["pushed_version"].string_value == str(version)
              and a.custom_properties["pushed"].int_value == 1]
    if not pushes:
        return None
    push = max(pushes, key=lambda a: a.id)
    execution_types = {t.id: t.name for t in store.get_execution_types()}
    frontier = {push.id}
    for _ in range(5):  # PushedModel <- Pusher <- (canary's copy <- ServingCanary <-) Model <- Trainer
        producers = {e.execution_id for e in store.get_events_by_artifact_ids(list(frontier)) if e.type == e.OUTPUT}
        trainers = {x.id for x in store.get_executions_by_id(list(producers)) if execution_types[x.type_id].endswith(".Trainer")}
        inputs = [e.artifact_id for e in store.get_events_by_execution_ids(list(trainers or producers)) if e.type == e.INPUT]
        artifacts = store.get_artifacts_by_id(inputs)
        if trainers:
            return _trainer_baseline(version, push, [a for a in artifacts if types[a.type_id] == "Examples"])
        frontier = {a.id for a in artifacts if types[a.type_id] == "Model"}
        if not frontier:
            return None
    return None


def _trainer_baseline(version: int, push: Any, examples: list) -> Baseline:
    """The Baseline of the Examples artifacts (MLMD protos) a Trainer read: their train split files."""
    files = []
    for a in examples:
        artifact = Examples()
        artifact.set_mlmd_artifact(a)
        files += tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([artifact], TRAIN), "*"))
    spans = sorted({int(a.custom_properties["span"].int_value) for a in examples if "span" in a.custom_properties} - {0})
    where = f", spans {spans[0]}-{spans[-1]}" if len(spans) > 1 else f", span {spans[0]}" if spans else ""
    return Baseline(version, push.custom_properties["pushed_destination"].string_value, sorted(files),
                    source=f"the train split its Trainer read ({len(examples)} Examples artifact(s){where})")


def trained_on_model_record(model_dir: str, version: int) -> Baseline | None:
    """The train-split files the version's own training record names (``assets.extra/embedpipe/
    training.json``, written by models/trainer.py): the baseline where no local metadata store
    knows the push (a compiled pipeline, a model copied from elsewhere). None when the record is
    missing or names Transform's output (``training.input: transformed``) rather than raw examples."""
    info = os.path.join(model_dir, MODEL_INFO_DIR)
    record, config = _read_json(os.path.join(info, "training.json")), _read_json(os.path.join(info, "config.json"))
    if not record or not config or config["config"].get("training", {}).get("input", "raw") != "raw":
        return None
    files = sorted(f for pattern in record.get("train_files", []) for f in tf.io.gfile.glob(pattern))
    if not files:
        return None
    return Baseline(version, model_dir, files, source=f"the train files its training record names ({len(files)} files)")


# ------------------------------------------------------------------ OOV counting
class OovCounts(beam.CombineFn):
    """feature -> [tokens, tokens not in the version's vocabulary], over Arrow record batches."""

    def __init__(self, vocabularies: dict[str, tuple[str, list[bytes]]]) -> None:
        self._vocabularies = vocabularies  # feature -> (dtype, tokens)
        self._sets: dict[str, pa.Array] = {}

    def setup(self) -> None:
        self._sets = {name: pa.array([int(t) for t in tokens], pa.int64()) if dtype == "int" else pa.array(tokens, pa.binary())
                      for name, (dtype, tokens) in self._vocabularies.items()}

    def create_accumulator(self) -> dict[str, list[int]]:
        return {name: [0, 0] for name in self._vocabularies}

    def add_input(self, counts: dict[str, list[int]], batch: pa.RecordBatch) -> dict[str, list[int]]:
        if not self._sets:
            self.setup()
        for name in self._vocabularies:
            index = batch.schema.get_field_index(name)
            if index < 0:
                continue
            column = batch.column(index)
            if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
                continue
            values = pc.list_flatten(column)
            if len(values) == 0:
                continue
            known = pc.sum(pc.is_in(values, value_set=self._sets[name].cast(values.type))).as_py() or 0
            counts[name][0] += len(values)
            counts[name][1] += len(values) - known
        return counts

    def merge_accumulators(self, accumulators: Any) -> dict[str, list[int]]:
        merged = self.create_accumulator()
        for a in accumulators:
            for name, (total, oov) in a.items():
                merged[name][0] += total
                merged[name][1] += oov
        return merged

    def extract_output(self, counts: dict[str, list[int]]) -> dict[str, list[int]]:
        return counts


def model_vocabularies(config: PipelineConfig, model_dir: str) -> dict[str, tuple[str, list[bytes]]]:
    """feature -> (dtype, the version's vocabulary of it), from the vocabularies kept beside the model."""
    vocabularies = {}
    for f in config.features:
        path = os.path.join(model_dir, MODEL_INFO_DIR, VOCABULARIES_DIR, f.vocabulary_owner)
        if tf.io.gfile.exists(path):
            vocabularies[f.name] = (f.dtype, read_vocabulary(path))
    return vocabularies


# ------------------------------------------------------------------ the comparison
@dataclass
class FeatureSkew:
    """One feature of one served version against its training data."""

    feature: str
    measure: str
    distance: float
    threshold: float
    skewed: bool
    oov_served: float | None
    oov_trained: float | None


@dataclass
class VersionSkew:
    """One served version's requests against its training data."""

    version: int
    calls: int
    examples: int
    baseline: str
    features: list[FeatureSkew]
    output_dir: str

    @property
    def skewed(self) -> list[FeatureSkew]:
        return [f for f in self.features if f.skewed]


def _record_batches(label: str, serialized: beam.PCollection, schema: Any) -> beam.PCollection:
    """Serialized tf.Examples -> Arrow record batches typed by the schema (TFX's TFXIO, as StatisticsGen reads)."""
    source = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["embedpipe", "monitor"], schema=schema)
    return serialized | f"Decode[{label}]" >> source.BeamSource()


def run_monitor(config: PipelineConfig, logs: str, output_dir: str, baseline_statistics: str = "",
                model_dir: str = "") -> list[VersionSkew]:
    """Compare every answering version's logged requests with its training data; write what was
    measured under ``output_dir``; one VersionSkew per version. Beam runs as the config says
    (``direct_running_mode: auto`` settled by the bytes read, pipeline/beam_mode.py)."""
    files = log_files(logs)
    if not files:
        raise MonitorError(f"--logs {logs}: no complete request-log files ({logs}*{LOG_SUFFIX}); is logging_config set, "
                           "and has a file been closed yet (by size, by age, or at the server's exit)?")
    calls = versions_answering(files)
    schema = tfdv.load_schema_text(config.schema)
    baselines = {}
    for version in sorted(calls):
        pushed_dir = model_dir or os.path.join(config.push.model_directory, str(version))
        found = None
        if not baseline_statistics:
            found = trained_on(config.pipeline.metadata_path, version) or trained_on_model_record(pushed_dir, version)
        if found is None:
            if not baseline_statistics:
                raise MonitorError(f"version {version}: no push of it in {config.pipeline.metadata_path}, and no training "
                                   f"record of raw examples in {pushed_dir}; give --baseline-statistics (and --model-dir "
                                   "for the OOV rates)")
            found = Baseline(version, pushed_dir, statistics_path=baseline_statistics, source=baseline_statistics)
        baselines[version] = found
    options = tfdv.StatsOptions(schema=schema)
    read = files + [f for b in baselines.values() for f in b.training_files]
    beam_args = direct_mode(config.beam, sum(tf.io.gfile.stat(f).length for f in read), os.cpu_count() or 1).args
    outputs: dict[tuple[int, str], str] = {}
    with beam.Pipeline(argv=list(beam_args)) as pipeline:
        logged = (pipeline | "LogFiles" >> beam.Create(files) | "ReadLogs" >> beam.io.ReadAllFromTFRecord()
                  | "Examples" >> beam.FlatMap(lambda r: ((v, e) for v, es in [served_examples(r, config)] for e in es)))
        for version, baseline in baselines.items():
            vocabularies = model_vocabularies(config, baseline.model_dir)
            out = os.path.join(output_dir, f"version-{version}")
            sides = {SERVED: logged | f"Version[{version}]" >> beam.Filter(lambda pair, v=version: pair[0] == v)
                     | f"Serialized[{version}]" >> beam.Map(lambda pair: pair[1])}
            if baseline.training_files:
                sides[TRAINED] = (pipeline | f"TrainFiles[{version}]" >> beam.Create(baseline.training_files)
                                  | f"ReadTrain[{version}]" >> beam.io.ReadAllFromTFRecord())
            for side, serialized in sides.items():
                label = f"{side}[{version}]"
                batches = _record_batches(label, serialized, schema)
                outputs[(version, side)] = os.path.join(out, f"{side}_statistics.pb")
                (batches | f"Stats[{label}]" >> tfdv.GenerateStatistics(options)
                 | f"WriteStats[{label}]" >> tfdv.WriteStatisticsToBinaryFile(outputs[(version, side)]))
                (batches | f"Oov[{label}]" >> beam.CombineGlobally(OovCounts(vocabularies))
                 | f"WriteOov[{label}]" >> beam.Map(_write_json, os.path.join(out, f"{side}_oov.json")))
    results = []
    for version, baseline in baselines.items():
        out = os.path.join(output_dir, f"version-{version}")
        served = tfdv.load_stats_binary(outputs[(version, SERVED)])
        trained = tfdv.load_stats_binary(baseline.statistics_path or outputs[(version, TRAINED)])
        measured, anomalies = measure_drift(served, trained, schema, config.monitoring.skew, skew=True)
        io_utils.write_bytes_file(os.path.join(out, DRIFT_FILE), anomalies.SerializeToString())
        oov = {side: _read_json(os.path.join(out, f"{side}_oov.json")) for side in (SERVED, TRAINED)}
        by_feature = {m.feature: m for m in measured}
        rows = []
        for f in config.features:
            m = by_feature.get(f.name)
            rows.append(FeatureSkew(f.name, m.measure if m else "-", m.distance if m else 0.0,
                                    config.monitoring.skew.threshold(f.name), bool(m and m.over),
                                    _rate(oov[SERVED], f), _rate(oov[TRAINED], f)))
        result = VersionSkew(version, calls[version], int(served.datasets[0].num_examples) if served.datasets else 0,
                             baseline.source, rows, out)
        _write_json({**asdict(result), "skewed": [f.feature for f in result.skewed]}, os.path.join(out, "skew.json"))
        results.append(result)
    return results


def _rate(counts: dict[str, list[int]] | None, feature: FeatureConfig) -> float | None:
    if not counts or feature.name not in counts or counts[feature.name][0] == 0:
        return None
    total, oov = counts[feature.name]
    return oov / total


def _write_json(value: Any, path: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f, indent=1)


def _read_json(path: str) -> Any:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def default_output_dir(config: PipelineConfig) -> str:
    """``<pipeline root>/monitor/<UTC time>``."""
    return os.path.join(config.pipeline.root, "monitor", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))


def format_report(results: list[VersionSkew]) -> str:
    """One table per version: a row per feature (distance, threshold, verdict, OOV rates)."""
    lines = []
    for r in results:
        lines.append(f"version {r.version}: {r.calls} logged calls, {r.examples} examples; against {r.baseline}")
        lines.append(f"  {'feature':<22} {'measure':<26} {'distance':>9} {'threshold':>9}  {'verdict':<7} "
                     f"{'OOV served':>10} {'OOV trained':>11}")
        for f in r.features:
            measure = {"L_INFTY": "L-infinity", "JENSEN_SHANNON_DIVERGENCE": "Jensen-Shannon", "EMPTIED": "emptied"}.get(f.measure, f.measure)
            lines.append(f"  {f.feature:<22} {measure:<26} {f.distance:>9.3f} {f.threshold:>9.3g}  {'SKEW' if f.skewed else 'ok':<7} "
                         f"{_percent(f.oov_served):>10} {_percent(f.oov_trained):>11}")
        lines.append(f"  written to {r.output_dir}")
    return "\n".join(lines)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"
