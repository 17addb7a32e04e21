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


def _jsonl_file(tmp_path, lines: list[str]):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_jsonl_pieces_cover_every_line_once_and_know_their_line_numbers(tmp_path, specs) -> None:
    from records.raw_records import jsonl_chunks, read_jsonl_chunk

    lines = [f'{{"user": "u{i}", "history": [{i}], "clicked": {i % 2}}}' for i in range(1, 501)]
    lines[250] = ""  # a blank line inside: skipped, still counted
    path = _jsonl_file(tmp_path, lines)
    pieces = list(jsonl_chunks(path, chunk_bytes=1000))
    assert len(pieces) > 10 and pieces[0].start == 0 and pieces[-1].end == len(open(path, "rb").read())
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False)), "contiguous, no byte twice"
    users = [e.features.feature["user"].bytes_list.value[0].decode() for p in pieces for e in read_jsonl_chunk(p, specs)]
    assert users == [f"u{i}" for i in range(1, 501) if i != 251]
    for p in pieces:  # each piece starts on the line its number says
        first = open(path, "rb").read()[p.start:p.end].split(b"\n")[0]
        assert first == lines[p.first_line - 1].encode()


def test_a_bad_record_in_a_later_piece_names_its_own_line(tmp_path, specs) -> None:
    from records.raw_records import jsonl_chunks, read_jsonl_chunk

    lines = [f'{{"user": "u{i}", "clicked": 1}}' for i in range(400)]
    lines[356] = '{"user": "u356", "history": ["x"], "clicked": 1}'
    pieces = list(jsonl_chunks(_jsonl_file(tmp_path, lines), chunk_bytes=512))
    with pytest.raises(RawDataError, match=r"big\.jsonl:357: field 'history': 'x' is a string"):
        for p in pieces:
            list(read_jsonl_chunk(p, specs))


def test_a_line_longer_than_a_piece_stays_whole_and_an_empty_file_is_refused(tmp_path, specs) -> None:
    from records.raw_records import jsonl_chunks, read_jsonl_chunk

    long_line = '{"user": "u1", "history": [' + ", ".join(str(i) for i in range(3000)) + '], "clicked": 1}'
    pieces = list(jsonl_chunks(_jsonl_file(tmp_path, [long_line, '{"user": "u2", "clicked": 0}']), chunk_bytes=100))
    examples = [e for p in pieces for e in read_jsonl_chunk(p, specs)]
    assert len(examples) == 2 and len(examples[0].features.feature["history"].int64_list.value) == 3000
    (tmp_path / "blank.jsonl").write_text("\n \n")
    with pytest.raises(RawDataError, match=r"blank\.jsonl: no records"):
        list(jsonl_chunks(str(tmp_path / "blank.jsonl"), chunk_bytes=100))
