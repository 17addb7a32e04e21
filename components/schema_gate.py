"""SchemaGate: stop the run before Transform when ExampleValidator found anomalies.

ExampleValidator only records anomalies; it never fails a run. This component reads its output
for every split and raises :class:`DataAnomaliesError` with one readable line per anomaly:
split, feature, problem, and what the statistics saw (missing count, value counts, top values).
"""


import os

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import io_utils

ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """The raw data does not match the curated schema."""


def _feature_stats(stats: statistics_pb2.DatasetFeatureStatisticsList, name: str) -> str:
    for dataset in stats.datasets:
        for feature in dataset.features:
            if feature.path.step and feature.path.step[-1] == name:
                common = (
                    feature.string_stats.common_stats
                    if feature.HasField("string_stats")
                    else feature.num_stats.common_stats
                )
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


@tfx.dsl.components.component
def SchemaGate(  # noqa: N802 -- TFX component names are class-like
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
) -> None:
    """Raise DataAnomaliesError listing every anomaly ExampleValidator recorded."""
    anomalies_by_split, stats_by_split = {}, {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        anomalies_by_split[split] = _read_anomalies(
            os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        )
        stats_by_split[split] = tfdv.load_stats_binary(
            os.path.join(artifact_utils.get_split_uri([statistics], split), "FeatureStats.pb")
        )
    lines = describe_anomalies(anomalies_by_split, stats_by_split)
    if lines:
        raise DataAnomaliesError(
            "the data does not match the curated schema; fix the data or curate the schema:\n  " + "\n  ".join(lines)
        )


def _read_anomalies(path: str) -> anomalies_pb2.Anomalies:
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(io_utils.read_bytes_file(path))
    return anomalies
