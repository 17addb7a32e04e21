"""SchemaGate: stop the run before Transform when ExampleValidator found anomalies.

ExampleValidator only records anomalies; it never fails a run. This component reads its output
for every split and raises :class:`DataAnomaliesError` with one readable line per anomaly:
split, feature, problem, and what the statistics saw (missing count, value counts, top values).
It also checks the one domain ExampleValidator leaves unchecked: ``bool_domain`` on an INT feature
(a 0/1 label given as 2 passed it and became 0 in Transform).
"""


import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME as ANOMALIES_FILE
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, ExampleStatistics, Schema
from tfx.utils import io_utils


class DataAnomaliesError(RuntimeError):
    """The raw data does not match the curated schema."""


def common_stats(feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    """A feature's common statistics (missing count, values per example), string or numeric."""
    return feature.string_stats.common_stats if feature.HasField("string_stats") else feature.num_stats.common_stats


def _feature_stats(stats: statistics_pb2.DatasetFeatureStatisticsList, name: str) -> str:
    for dataset in stats.datasets:
        for feature in dataset.features:
            if feature.path.step and feature.path.step[-1] == name:
                common = common_stats(feature)
                parts = [
                    f"missing in {common.num_missing} of {dataset.num_examples} examples",
                    f"values per example {common.min_num_values}..{common.max_num_values}",
                ]
                if feature.HasField("string_stats") and feature.string_stats.top_values:
                    tops = ", ".join(repr(v.value) for v in feature.string_stats.top_values[:3])
                    parts.append(f"top values {tops}")
                elif feature.HasField("num_stats"):
                    parts.append(f"range {feature.num_stats.min:g}..{feature.num_stats.max:g}")
                return "; ".join(parts)
    return "no statistics"


def describe_anomalies(
    anomalies_by_split: dict[str, anomalies_pb2.Anomalies],
    stats_by_split: dict[str, statistics_pb2.DatasetFeatureStatisticsList],
) -> list[str]:
    """One line per (split, feature) anomaly; empty when the data matches the schema."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            problems = "; ".join(r.description or r.short_description for r in info.reason) or info.description
            lines.append(f"[{split}] feature '{feature}': {problems} ({_feature_stats(stats_by_split[split], feature)})")
        if anomalies.HasField("dataset_anomaly_info"):
            problems = "; ".join(r.description for r in anomalies.dataset_anomaly_info.reason)
            lines.append(f"[{split}] whole dataset: {problems}")
    return lines


def unchecked_bool_domain_problems(
    schema: schema_pb2.Schema, stats_by_split: dict[str, statistics_pb2.DatasetFeatureStatisticsList]
) -> list[str]:
    """One line per split and INT feature declared ``bool_domain`` whose values leave {0, 1}.

    StatisticsGen, given such a schema, computes the feature as categorical (string statistics),
    and ExampleValidator then reports no anomaly for a 2 (measured with TFDV 1.16,
    tests/test_schema_gate.py); without the schema it computes numeric statistics, checked here too.
    """
    boolean = {f.name for f in schema.feature if f.type == schema_pb2.INT and f.HasField("bool_domain")}
    lines = []
    for split, stats in sorted(stats_by_split.items()):
        for dataset in stats.datasets:
            for feature in dataset.features:
                name = feature.path.step[-1] if feature.path.step else feature.name
                if name not in boolean:
                    continue
                if feature.HasField("string_stats"):
                    seen = sorted({v.value for v in feature.string_stats.top_values} - {"0", "1"})
                    bad = bool(seen) or feature.string_stats.unique > 2
                    what = f"values {', '.join(seen)} seen" if seen else f"{feature.string_stats.unique} distinct values seen"
                else:
                    bad = feature.num_stats.min < 0 or feature.num_stats.max > 1
                    what = f"values {feature.num_stats.min:g}..{feature.num_stats.max:g} seen"
                if bad:
                    lines.append(
                        f"[{split}] feature '{name}': {what}, but the schema declares bool_domain (0 or 1), which "
                        "ExampleValidator does not enforce on an INT feature; give it int_domain {min: 0 max: 1} or fix the data"
                    )
    return lines


@component
def SchemaGate(  # noqa: N802 -- TFX component names are class-like
    anomalies: InputArtifact[ExampleAnomalies],
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
) -> None:
    """Raise DataAnomaliesError listing every anomaly ExampleValidator recorded, and values of an
    INT ``bool_domain`` feature outside 0..1."""
    anomalies_by_split, stats_by_split = {}, {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        anomalies_by_split[split] = _read_anomalies(
            os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        )
        stats_by_split[split] = stats_artifact_utils.load_statistics(statistics, split).proto()
    schema_proto = tfdv.load_schema_text(io_utils.get_only_uri_in_dir(schema.uri))
    lines = describe_anomalies(anomalies_by_split, stats_by_split) + unchecked_bool_domain_problems(schema_proto, stats_by_split)
    if lines:
        raise DataAnomaliesError(
            "the data does not match the curated schema; fix the data or curate the schema:\n  " + "\n  ".join(lines)
        )


def _read_anomalies(path: str) -> anomalies_pb2.Anomalies:
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(io_utils.read_bytes_file(path))
    return anomalies
