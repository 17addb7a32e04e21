"""`embedpipe schema infer` shapes the inferred schema from the config, for every input format."""

from __future__ import annotations

from pathlib import Path

import tensorflow_data_validation as tfdv

from components.raw_records import column_specs, iter_jsonl
from pipeline.config import parse_config
from pipeline.datasets.synthetic import generate_rows
from pipeline.schema_infer import infer_schema_file


def _write_tfrecord(path: Path, config) -> None:
    import json

    import tensorflow as tf

    lines = [json.dumps(r) for r in generate_rows(200, seed=4)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in iter_jsonl(lines, "gen", column_specs(config.to_dict())):
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
