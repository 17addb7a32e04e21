"""SchemaGate's own check: the bool_domain on INT features that TFDV leaves unchecked."""

from __future__ import annotations

import pandas as pd
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.schema_gate import unchecked_bool_domain_problems

SCHEMA = """
feature { name: "clicked" type: INT bool_domain {} presence { min_fraction: 1 } }
feature { name: "target" type: INT presence { min_fraction: 1 } }
"""


def _stats(labels: list[int], schema: schema_pb2.Schema | None = None):
    """Statistics as StatisticsGen computes them: with the schema when the pipeline gives it one."""
    frame = pd.DataFrame({"clicked": labels, "target": [7] * len(labels)})
    return tfdv.generate_statistics_from_dataframe(frame, stats_options=tfdv.StatsOptions(schema=schema))


def test_a_label_value_outside_0_1_is_named_where_example_validator_sees_no_anomaly() -> None:
    schema = text_format.Parse(SCHEMA, schema_pb2.Schema())
    stats = _stats([0, 1, 2, 1], schema)  # the pipeline's case: bool_domain makes the feature categorical
    assert stats.datasets[0].features[0].HasField("string_stats")
    assert "clicked" not in tfdv.validate_statistics(stats, schema).anomaly_info  # the yardstick: TFDV lets 2 pass
    [line] = unchecked_bool_domain_problems(schema, {"train": stats})
    assert line.startswith("[train] feature 'clicked': values 2 seen") and "int_domain {min: 0 max: 1}" in line


def test_numeric_statistics_are_checked_too() -> None:
    schema = text_format.Parse(SCHEMA, schema_pb2.Schema())
    [line] = unchecked_bool_domain_problems(schema, {"eval": _stats([0, 1, -1])})
    assert line.startswith("[eval] feature 'clicked': values -1..1 seen")


def test_0_1_values_and_features_without_bool_domain_pass() -> None:
    schema = text_format.Parse(SCHEMA, schema_pb2.Schema())
    splits = {"train": _stats([0, 1, 1], schema), "eval": _stats([1, 0]), "other": _stats([1, 1], schema)}
    assert unchecked_bool_domain_problems(schema, splits) == []
