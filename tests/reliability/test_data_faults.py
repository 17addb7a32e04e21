"""Broken raw data: refused at the first component that reads it, naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.raw_records import RawDataError, column_specs, read_file_examples
from pipeline.config import parse_config
from tests.test_example_gen import _run


def _specs(raw_config: dict):
    return column_specs(parse_config(raw_config).to_dict())


def _read(path: Path, raw_config: dict, fmt: str = "jsonl") -> list:
    return list(read_file_examples(str(path), fmt, _specs(raw_config), ";"))


def test_an_empty_file_stops_example_gen_naming_it(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text("\n\n")
    raw_config["data"] = {"format": "jsonl", "path": str(data)}
    with pytest.raises(Exception, match=r"empty\.jsonl: no records"):
        _run(parse_config(raw_config).to_dict(), tmp_path / "out")


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
    from pipeline.config import ConfigError, load_config

    if field == "feature":
        raw_config["features"][1]["name"] = "interestz"
        expected = r"config field 'features\[1\].name': 'interestz' is not a feature of the schema"
    else:
        raw_config["label"]["name"] = "klicked"
        expected = r"config field 'label.name': 'klicked' is not a feature of the schema"
    with pytest.raises(ConfigError, match=expected):
        load_config(_write_config(tmp_path, raw_config))
