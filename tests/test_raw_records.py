"""Raw JSON Lines / CSV records -> tf.Example: typed lists, and errors that name file:line and field."""

from __future__ import annotations

import pytest

from embedconfig.config import parse_config
from records.raw_records import RawDataError, column_specs, iter_csv, iter_jsonl


@pytest.fixture
def specs(raw_config: dict):
    return column_specs(parse_config(raw_config))


def _values(example, name):
    f = example.features.feature[name]
    return list(getattr(f, f.WhichOneof("kind")).value)


def test_jsonl_lists_become_typed_feature_lists(specs) -> None:
    line = '{"user": "u1", "interests": ["a", "b"], "history": [3, 4, 5], "target": 7, "target_categories": [], "clicked": 1}'
    (example,) = iter_jsonl([line], "f.jsonl", specs)
    assert _values(example, "interests") == [b"a", b"b"]
    assert _values(example, "history") == [3, 4, 5]
    assert _values(example, "target") == [7]
    assert example.features.feature["target_categories"].bytes_list.value == []
    assert "target_categories" in example.features.feature, "an empty list is present with no values"


def test_null_leaves_the_feature_out(specs) -> None:
    (example,) = iter_jsonl(['{"user": null, "clicked": 0}'], "f.jsonl", specs)
    assert "user" not in example.features.feature


def test_undeclared_fields_are_kept_for_validation_to_see(specs) -> None:
    (example,) = iter_jsonl(['{"clicked": 0, "extra": [1.5, 2]}'], "f.jsonl", specs)
    assert list(example.features.feature["extra"].float_list.value) == [1.5, 2.0]


def test_bad_json_names_file_and_line(specs) -> None:
    lines = ['{"clicked": 1}', "", '{"clicked": 1,']
    with pytest.raises(RawDataError, match=r"data\.jsonl:3: not valid JSON"):
        list(iter_jsonl(lines, "data.jsonl", specs))


def test_wrong_type_names_field_and_line(specs) -> None:
    with pytest.raises(RawDataError, match=r"d\.jsonl:1: field 'history': 'x' is a string, expected an integer"):
        list(iter_jsonl(['{"history": [1, "x"]}'], "d.jsonl", specs))


def test_scalar_for_a_sequence_is_an_error(specs) -> None:
    with pytest.raises(RawDataError, match="field 'history'.*not a list"):
        list(iter_jsonl(['{"history": 5}'], "d.jsonl", specs))


def test_csv_list_cells_split_on_the_delimiter(specs) -> None:
    text = "user,interests,history,target,target_categories,clicked\nu1,a|b,1|2|3,9,,1\n"
    (example,) = iter_csv(text, "d.csv", specs, "|")
    assert _values(example, "interests") == [b"a", b"b"]
    assert _values(example, "history") == [1, 2, 3]
    assert _values(example, "target") == [9]
    assert example.features.feature["target_categories"].bytes_list.value == []


def test_csv_ragged_row_names_line(specs) -> None:
    text = "user,clicked\nu1,1\nu2,0,extra\n"
    with pytest.raises(RawDataError, match=r"d\.csv:3: 3 cells but the header has 2"):
        list(iter_csv(text, "d.csv", specs, "|"))
