"""DriftGate: the newest span's statistics against the previous span's, before Transform runs.

A broken upstream job (a feature gone empty, a vocabulary shifted) often still fits the curated
schema, so SchemaGate lets it through. This gate measures every feature with TFDV's drift
comparators, the ones TFDV applies with ``previous_statistics``: the L-infinity distance between
the value frequencies of a string feature, the Jensen-Shannon divergence between the histograms of
a numeric one, on the train split. Past its threshold (``data.drift``: a default, or a feature's
own) the run stops, naming the feature, the distance and the threshold; ``data.on_drift: warn``
records the same and goes on. Every measurement, passing or not, is written as TFDV's Anomalies
proto (with its ``drift_skew_info``) in the gate's output, for the run summary and later runs.

The previous span's statistics come from ML Metadata (:class:`PreviousSpanStatisticsStrategy`): the
StatisticsGen output with the largest span below the newest one, its span read through its lineage
(components/lineage.py says why). The first span has none, and passes. A compiled (Kubeflow)
pipeline cannot resolve them (docs/KUBEFLOW.md, "Spans"): its ExampleGen reads the window itself,
each span's shards named by span, and the gate computes both spans' statistics from those.
"""


import copy
import json
import os
from dataclasses import dataclass

import ml_metadata as mlmd
import tensorflow_data_validation as tfdv
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx import types
from tfx.components.example_gen.utils import SPAN_PROPERTY_NAME as SPAN
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.common import resolver
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, Examples, ExampleStatistics, Schema
from tfx.utils import io_utils

from components.example_gen import span_shard_prefix, window_spans_of
from components.lineage import examples_read_by_producer, recorded_span
from components.schema_gate import common_stats
from embedconfig.config import TRAIN, DriftConfig, from_component_config

STATISTICS_KEY = "statistics"
EXAMPLES_KEY = "examples"  # in: the newest span's Examples; out: the previous span's Examples
DRIFT_FILE = "SchemaDiff.pb"  # the file name TFX's ExampleValidator gives its anomalies


class DataDriftError(RuntimeError):
    """The newest span drifted from the previous one past a threshold."""


def span_of(examples: types.Artifact) -> int:
    """The span ExampleGen's driver recorded on an Examples artifact."""
    return examples.get_int_custom_property(SPAN) if examples.has_custom_property(SPAN) else examples.span


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """The ExampleStatistics (and the Examples they describe) with the largest span below the newest
    ``examples``' span; nothing for the first span."""

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        newest = max((span_of(a) for a in input_dict.get(EXAMPLES_KEY, [])), default=None)
        best: tuple[int, int, types.Artifact, metadata_store_pb2.Artifact] | None = None
        for statistics in input_dict.get(STATISTICS_KEY, []):
            described = examples_read_by_producer(store, statistics.id)
            if not described or newest is None:
                continue
            span = recorded_span(described[0]) or 0
            if span < newest and (best is None or (span, statistics.id) > best[:2]):
                best = (span, statistics.id, statistics, described[0])
        if best is None:
            return {STATISTICS_KEY: [], EXAMPLES_KEY: []}
        examples = types.standard_artifacts.Examples()
        examples.set_mlmd_artifact(best[3])
        return {STATISTICS_KEY: [best[2]], EXAMPLES_KEY: [examples]}


@dataclass(frozen=True)
class Drift:
    """One feature's distance between the previous span and the newest."""

    feature: str
    measure: str  # L_INFTY | JENSEN_SHANNON_DIVERGENCE
    distance: float
    threshold: float

    @property
    def over(self) -> bool:
        """Past its threshold."""
        return self.distance > self.threshold

    def describe(self) -> str:
        """``feature 'interests': L-infinity distance 0.87 > threshold 0.3``."""
        if self.measure == EMPTIED:
            return f"feature '{self.feature}': no values left (it had values on the previous span), threshold {self.threshold:g}"
        name = "L-infinity distance" if self.measure == "L_INFTY" else "Jensen-Shannon divergence"
        return f"feature '{self.feature}': {name} {self.distance:.3g} {'>' if self.over else '<='} threshold {self.threshold:g}"


def with_drift_comparators(schema: schema_pb2.Schema, drift: DriftConfig, comparator: str = "drift_comparator") -> schema_pb2.Schema:
    """A copy of ``schema`` with a drift (or ``skew_comparator``) comparator on every feature:
    L-infinity for strings, Jensen-Shannon for numbers, each at the feature's threshold."""
    compared = copy.deepcopy(schema)
    for feature in compared.feature:
        threshold = drift.threshold(feature.name)
        if feature.type == schema_pb2.BYTES:
            getattr(feature, comparator).infinity_norm.threshold = threshold
        else:
            getattr(feature, comparator).jensen_shannon_divergence.threshold = threshold
    return compared


EMPTIED = "EMPTIED"  # values on the previous span, none on the newest: every bit of the distribution moved


def measure_drift(newest: object, previous: object, schema: schema_pb2.Schema, drift: DriftConfig,
                  skew: bool = False) -> tuple[list[Drift], anomalies_pb2.Anomalies]:
    """Every feature's drift from ``previous`` to ``newest`` (DatasetFeatureStatisticsList), and TFDV's Anomalies.
    ``skew=True``: ``previous`` is the training data, ``newest`` the served traffic, measured with
    TFDV's skew comparators (the same distances; TFDV reports them as skew).

    A feature that had values on the previous span and has none on the newest counts as the largest
    distance there is (1.0): TFDV's comparators measure nothing for it (no histogram left; a dropped
    column is only an anomaly) or a small L-infinity distance (0.10 for an emptied sequence,
    bench/RESULTS.md, "Daily retraining"), so a feature gone empty would pass them."""
    if skew:
        anomalies = tfdv.validate_statistics(previous, with_drift_comparators(schema, drift, "skew_comparator"), serving_statistics=newest)
    else:
        anomalies = tfdv.validate_statistics(newest, with_drift_comparators(schema, drift), previous_statistics=previous)
    found = {}
    for info in anomalies.drift_skew_info:
        for m in (*info.drift_measurements, *info.skew_measurements):
            name = ".".join(info.path.step)
            found[name] = Drift(name, anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type), m.value, m.threshold)
    before, after = _values_per_feature(previous), _values_per_feature(newest)
    for feature in schema.feature:
        if before.get(feature.name, 0) > 0 and after.get(feature.name, 0) == 0:
            found[feature.name] = Drift(feature.name, EMPTIED, 1.0, drift.threshold(feature.name))
    return sorted(found.values(), key=lambda d: (-d.distance / d.threshold, d.feature)), anomalies


def _values_per_feature(statistics: object) -> dict[str, int]:
    """Feature name -> how many values it has in the (first) dataset of a statistics list."""
    counts: dict[str, int] = {}
    for dataset in statistics.datasets[:1]:
        for feature in dataset.features:
            common = common_stats(feature)
            counts[".".join(feature.path.step)] = int(common.tot_num_values or common.num_non_missing * common.avg_num_values)
    return counts


def span_statistics(examples: types.Artifact, span: int, schema: schema_pb2.Schema) -> object:
    """TFDV's statistics of one span's train rows in a compiled window's Examples (its shards carry
    the span, components/example_gen.py), computed as StatisticsGen computes them, with the schema."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], TRAIN), span_shard_prefix(span) + "*")
    return tfdv.generate_statistics_from_tfrecord(data_location=pattern, stats_options=tfdv.StatsOptions(schema=schema))


@component
def DriftGate(  # noqa: N802 -- TFX component names are class-like
    examples: InputArtifact[Examples],
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    drift: OutputArtifact[ExampleAnomalies],
    drift_config: Parameter[str],
    on_drift: Parameter[str] = "fail",
    previous_statistics: InputArtifact[ExampleStatistics] = None,  # type: ignore[assignment] -- TFX's optional-input form
    previous_examples: InputArtifact[Examples] = None,  # type: ignore[assignment]
) -> None:
    """Measure the newest span against the previous one; raise DataDriftError past a threshold
    (``on_drift: fail``), or record it (``warn``)."""
    config = from_component_config(json.loads(drift_config), DriftConfig)
    drift.split_names = artifact_utils.encode_split_names([TRAIN])
    newest_span = span_of(examples)
    drift.set_int_custom_property("span", newest_span)
    window = window_spans_of(examples)  # a compiled pipeline's ExampleGen reads the window itself
    if (previous_statistics is None or previous_examples is None) and len(window) < 2:
        drift.set_string_custom_property("drift", "no previous span to compare with")
        return
    schema_proto = tfdv.load_schema_text(io_utils.get_only_uri_in_dir(schema.uri))
    if previous_statistics is not None and previous_examples is not None:
        newest = stats_artifact_utils.load_statistics(statistics, TRAIN).proto()
        previous = stats_artifact_utils.load_statistics(previous_statistics, TRAIN).proto()
        previous_span = span_of(previous_examples)
    else:
        newest, previous = (span_statistics(examples, span, schema_proto) for span in (window[-1], window[-2]))
        previous_span = window[-2]
    measured, anomalies = measure_drift(newest, previous, schema_proto, config)
    io_utils.write_bytes_file(os.path.join(artifact_utils.get_split_uri([drift], TRAIN), DRIFT_FILE), anomalies.SerializeToString())
    over = [d for d in measured if d.over]
    drift.set_int_custom_property("previous_span", previous_span)
    drift.set_string_custom_property("drift", "; ".join(d.describe() for d in over) or "within every threshold")
    drift.set_int_custom_property("drifted_features", len(over))
    if over and on_drift == "fail":
        raise DataDriftError(
            f"span {newest_span} drifted from span {previous_span} (train split); fix the data upstream, or raise "
            f"the threshold in data.drift if the change is real:\n  " + "\n  ".join(d.describe() for d in over))

