"""`embedpipe schema infer` shapes the inferred schema from the config, for every input format."""

from __future__ import annotations

from pathlib import Path

import tensorflow_data_validation as tfdv

from embedconfig.config import parse_config
from pipeline.datasets.synthetic import generate_rows
from pipeline.schema_infer import infer_schema_file
from records.raw_records import column_specs, iter_jsonl


def _write_tfrecord(path: Path, config) -> None:
    import json

    import tensorflow as tf

    lines = [json.dumps(r) for r in generate_rows(200, seed=4)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in iter_jsonl(lines, "gen", column_specs(config)):
            writer.write(example.SerializeToString())


def test_tfrecord_input_gives_the_curated_shapes(tmp_path: Path, raw_config: dict) -> None:
    raw_config["data"] = {"format": "tfrecord", "path": str(tmp_path / "data.tfrecord")}
    config = parse_config(raw_config)
    _write_tfrecord(tmp_path / "data.tfrecord", config)
    notes = infer_schema_file(config, str(tmp_path / "schema.pbtxt"))
    assert notes[0] == "inferred from 200 examples"
    schema = tfdv.load_schema_text(str(tmp_path / "schema.pbtxt"))
    features = {f.name: f for f in schema.feature}
    assert [d.size for d in features["target"].shape.dim] == [1], "ids are dense [1]"
    assert not features["history"].HasField("shape") and features["history"].value_count.min == 0, "sequences may be empty"
    assert not features["interests"].HasField("domain") and not features["interests"].HasField("string_domain")
    assert list(features["clicked"].not_in_environment) == ["SERVING"]


def test_a_label_outside_its_0_1_domain_is_an_anomaly_of_the_curated_schema(tmp_path: Path, raw_config: dict) -> None:
    """schema infer writes int_domain {min: 0 max: 1} for a 0/1 label (ExampleValidator lets a 2 pass a bool_domain on INT)."""
    import json

    import pandas as pd

    from tests.helpers.configs import REPO

    raw_config["data"] = {"format": "jsonl", "path": str(tmp_path / "data.jsonl")}
    config = parse_config(raw_config)
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in generate_rows(200, seed=4)))
    infer_schema_file(config, str(tmp_path / "schema.pbtxt"))
    for schema_file in (tmp_path / "schema.pbtxt", REPO / "schema" / "synthetic.pbtxt"):
        schema = tfdv.load_schema_text(str(schema_file))
        clicked = next(f for f in schema.feature if f.name == "clicked")
        assert (clicked.int_domain.min, clicked.int_domain.max) == (0, 1), schema_file
        stats = tfdv.generate_statistics_from_dataframe(pd.DataFrame({"clicked": [0, 1, 2]}))
        anomalies = tfdv.validate_statistics(stats, schema)
        assert "clicked" in anomalies.anomaly_info, schema_file
        assert anomalies.anomaly_info["clicked"].description == "Unexpectedly large value: 2."
