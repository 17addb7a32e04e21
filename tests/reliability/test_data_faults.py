"""Broken raw data: refused at the first component that reads it, naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedconfig.config import parse_config
from records.raw_records import RawDataError, column_specs, read_file_examples
from tests.helpers.example_gen import run_example_gen


def _specs(raw_config: dict):
    return column_specs(parse_config(raw_config))


def _read(path: Path, raw_config: dict, fmt: str = "jsonl") -> list:
    return list(read_file_examples(str(path), fmt, _specs(raw_config), ";"))


def test_an_empty_file_stops_example_gen_naming_it(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text("\n\n")
    raw_config["data"] = {"format": "jsonl", "path": str(data)}
    with pytest.raises(Exception, match=r"empty\.jsonl: no records"):
        run_example_gen(parse_config(raw_config), tmp_path / "out")


def test_a_csv_with_only_its_header_is_empty(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "header.csv"
    data.write_text("user,history,clicked\n")
    with pytest.raises(RawDataError, match=r"header\.csv: no records"):
        _read(data, raw_config, "csv")


def test_a_quoted_number_in_json_is_refused(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "quoted.jsonl"
    data.write_text('{"user": "u1", "target": 3, "clicked": 1}\n{"user": "u2", "target": "17", "clicked": 0}\n')
    with pytest.raises(RawDataError, match=r"quoted\.jsonl:2: field 'target': '17' is a string, expected an integer"):
        _read(data, raw_config)


def test_csv_cells_are_text_and_still_parse(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "ok.csv"
    data.write_text("user,target,clicked\nu1,17,1\n")
    (example,) = _read(data, raw_config, "csv")
    assert list(example.features.feature["target"].int64_list.value) == [17]


def test_an_int64_overflow_names_file_line_and_field(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "big.jsonl"
    data.write_text('{"user": "u1", "history": [1, 92233720368547758070], "clicked": 1}\n')
    with pytest.raises(RawDataError, match=r"big\.jsonl:1: field 'history': 92233720368547758070 does not fit in a 64-bit integer"):
        _read(data, raw_config)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path: Path, raw_config: dict, fmt: str) -> None:
    data = tmp_path / f"latin1.{fmt}"
    if fmt == "jsonl":
        data.write_bytes(b'{"user": "u1", "clicked": 1}\n{"user": "caf\xe9", "clicked": 0}\n')
    else:
        data.write_bytes(b"user,clicked\nu1,1\ncaf\xe9,0\n")
    line = 2 if fmt == "jsonl" else 3
    with pytest.raises(RawDataError, match=rf"latin1\.{fmt}:{line}: not UTF-8 text"):
        _read(data, raw_config, fmt)


def _write_config(tmp_path: Path, raw_config: dict) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw_config))
    return path


def test_a_missing_schema_file_is_a_config_error_at_load(tmp_path: Path, raw_config: dict, capsys) -> None:
    from pipeline.cli import main

    raw_config["schema"] = str(tmp_path / "nowhere.pbtxt")
    assert main(["run", "--config", str(_write_config(tmp_path, raw_config))]) == 2
    assert f"config field 'schema': no schema file at {tmp_path / 'nowhere.pbtxt'}" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["feature", "label"])
def test_a_feature_or_label_absent_from_the_schema_is_a_config_error_at_load(tmp_path: Path, raw_config: dict, field: str) -> None:
    from embedconfig.config import ConfigError, load_config

    if field == "feature":
        raw_config["features"][1]["name"] = "interestz"
        expected = r"config field 'features\[1\].name': 'interestz' is not a feature of the schema"
    else:
        raw_config["label"]["name"] = "klicked"
        expected = r"config field 'label.name': 'klicked' is not a feature of the schema"
    with pytest.raises(ConfigError, match=expected):
        load_config(_write_config(tmp_path, raw_config))


@pytest.mark.parametrize("feature", ["target", "history"])
def test_a_schema_shape_the_exported_model_cannot_take_is_a_config_error_at_load(tmp_path: Path, raw_config: dict, feature: str) -> None:
    """Found on a hand-written schema (2026-12-02): an id entry without `shape [1]` trained for
    minutes, then the export failed with "Shapes (None, 2) and (None, 1) are incompatible"."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from embedconfig.config import ConfigError, load_config

    schema = text_format.Parse(Path(raw_config["schema"]).read_text(), schema_pb2.Schema())
    entry = next(f for f in schema.feature if f.name == feature)
    if feature == "target":
        entry.ClearField("shape")
        expected = r"config field 'features\[3\].kind': 'target' is an id feature, .* needs `shape \{ dim \{ size: 1 \} \}`"
    else:
        entry.shape.dim.add().size = 50
        expected = r"config field 'features\[2\].kind': 'history' is a sequence feature, .* fixed shape \[50\]: remove the `shape`"
    (tmp_path / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    raw_config["schema"] = str(tmp_path / "schema.pbtxt")
    with pytest.raises(ConfigError, match=expected):
        load_config(_write_config(tmp_path, raw_config))


@pytest.mark.parametrize(("change", "said"), [
    (lambda raw: raw["features"][0].update(dtype="int"),
     "config field 'features[0].dtype': is int, but the schema {schema} has 'user' as BYTES (dtype string reads it)"),
    (lambda raw: [f.update(dtype="string") for f in raw["features"][2:4]],  # history and target share a vocabulary
     "config field 'features[2].dtype': is string, but the schema {schema} has 'history' as INT (dtype int reads it)"),
    (lambda raw: raw["label"].update(dtype="string", positive_if="== yes"),
     "config field 'label.dtype': is string, but the schema {schema} has 'clicked' as INT (dtype int reads it)"),
])
def test_a_dtype_the_schema_contradicts_is_a_config_error_at_load(tmp_path: Path, raw_config: dict, change, said: str, capsys) -> None:
    """Issue 40: it was found at SchemaGate, after ExampleGen had run (exit 1)."""
    from pipeline.cli import main

    change(raw_config)
    assert main(["run", "--config", str(_write_config(tmp_path, raw_config))]) == 2
    assert said.format(schema=raw_config["schema"]) in capsys.readouterr().err


def _skip_config(raw_config: dict, data: Path, max_bad_fraction: float):
    raw_config["data"] = {"format": "jsonl", "path": str(data), "on_bad_record": "skip", "max_bad_fraction": max_bad_fraction}
    return parse_config(raw_config)


def _rows_with_bad(data: Path, good: int, bad_lines: dict[int, str]) -> None:
    import json

    from pipeline.datasets.synthetic import generate_rows

    rows = [json.dumps(r) for r in generate_rows(good, seed=3)]
    for line, text in sorted(bad_lines.items()):
        rows.insert(line - 1, text)
    data.write_text("\n".join(rows) + "\n")


def test_skip_writes_every_rejected_record_with_file_line_and_reason(tmp_path: Path, raw_config: dict) -> None:
    import json

    import tensorflow as tf

    data = tmp_path / "mixed.jsonl"
    _rows_with_bad(data, 200, {3: '{"user": "u", "target": "17", "clicked": 1}', 50: "not json", 120: '{"user": "u", "history": [1, 99999999999999999999]}'})
    examples = run_example_gen(_skip_config(raw_config, data, 0.05), tmp_path / "out")

    assert examples.get_int_custom_property("rejected_records") == 3
    rejects_dir = examples.get_string_custom_property("rejects_uri")
    rejects = [json.loads(line) for path in tf.io.gfile.glob(f"{rejects_dir}/rejects-*") for line in open(path) if line.strip()]
    assert sorted((r["file"], r["line"]) for r in rejects) == [(str(data), 3), (str(data), 50), (str(data), 120)]
    assert any("'17' is a string" in r["reason"] for r in rejects) and any("not valid JSON" in r["reason"] for r in rejects)
    files = tf.io.gfile.glob(str(tmp_path / "out" / "Split-*" / "*"))
    assert sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP")) == 200, "every good record kept"


def test_skip_fails_the_run_past_max_bad_fraction(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "bad.jsonl"
    _rows_with_bad(data, 20, {i: "not json" for i in range(1, 6)})  # 5 of 25 = 20%
    with pytest.raises(Exception, match=r"5 of 25 records rejected \(20.00%\), more than data.max_bad_fraction 10.00%"):
        run_example_gen(_skip_config(raw_config, data, 0.1), tmp_path / "out")


def test_the_default_policy_stops_at_the_first_bad_record(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "bad.jsonl"
    _rows_with_bad(data, 20, {7: "not json"})
    raw_config["data"] = {"format": "jsonl", "path": str(data)}
    with pytest.raises(Exception, match=r"bad\.jsonl:7: not valid JSON"):
        run_example_gen(parse_config(raw_config), tmp_path / "out")


@pytest.mark.parametrize("data, message", [({"on_bad_record": "ignore"}, "'ignore' is not allowed"),
                                           ({"max_bad_fraction": 1.5}, "must be between 0 and 1")])
def test_the_policy_is_validated(raw_config: dict, data: dict, message: str) -> None:
    from embedconfig.config import ConfigError

    raw_config["data"].update(data)
    with pytest.raises(ConfigError, match=message):
        parse_config(raw_config)
