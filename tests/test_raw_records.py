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


@pytest.mark.parametrize(
    "cells, words",
    [
        ("u1,a,1| 2 |3,9,,1", None),  # spaces around a number are accepted, as before the one-pass conversion
        ("u1,a,1|2|99999999999999999999,9,,1", "d.csv:2: field 'history': 99999999999999999999 does not fit in a 64-bit integer"),
        ("u1,a,1|2.5|3,9,,1", "d.csv:2: field 'history': '2.5' is not an integer"),
        ("u1,a,1|2|3,9,,yes", "d.csv:2: field 'clicked': 'yes' is not an integer"),
    ],
    ids=["spaces", "too_big", "not_an_int", "bad_label"],
)
def test_csv_numbers_are_converted_in_one_pass_and_a_bad_one_is_named(specs, cells: str, words: str | None) -> None:
    text = f"user,interests,history,target,target_categories,clicked\n{cells}\n"
    if words is None:
        (example,) = iter_csv(text, "d.csv", specs, "|")
        assert _values(example, "history") == [1, 2, 3] and _values(example, "clicked") == [1]
        return
    with pytest.raises(RawDataError) as raised:
        list(iter_csv(text, "d.csv", specs, "|"))
    assert words in str(raised.value), str(raised.value)


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


def _csv_file(tmp_path, rows: list[list[str]], name: str = "big.csv") -> str:
    """``rows`` (the header first) as CSV, written by the csv module (quotes, \\r\\n line ends)."""
    import csv

    path = tmp_path / name
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)


def test_csv_pieces_end_where_a_record_ends_and_carry_the_header(tmp_path, specs) -> None:
    """A quoted cell may hold newlines, quotes and commas: a piece never ends inside it."""
    from records.raw_records import csv_chunks, read_csv_chunk

    notes = ["plain", 'said "hi"', "two\nlines", "a, b", "three\n\nlines", ""]
    rows = [["user", "note", "history", "clicked"]] + [[f"u{i}", notes[i % 6], f"{i}|{i + 1}", str(i % 2)] for i in range(600)]
    path = _csv_file(tmp_path, rows)
    data = open(path, "rb").read()
    for chunk_bytes in (64, 700, 10**6):
        pieces = list(csv_chunks(path, chunk_bytes=chunk_bytes))
        assert pieces[0].start == 0 and pieces[-1].end == len(data)
        assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False)), "contiguous, no byte twice"
        assert pieces[0].header is None and all(p.header == ("user", "note", "history", "clicked") for p in pieces[1:])
        assert all(p.first_line == data.count(b"\n", 0, p.start) + 1 for p in pieces)
        examples = [e for p in pieces for e in read_csv_chunk(p, specs, "|")]
        assert [e.features.feature["user"].bytes_list.value[0].decode() for e in examples] == [f"u{i}" for i in range(600)]
        assert [b"".join(e.features.feature["note"].bytes_list.value).decode() for e in examples] == \
            [notes[i % 6] for i in range(600)], "quoted cells whole"
    assert len(list(csv_chunks(path, chunk_bytes=64))) > 50


def test_a_bad_csv_row_in_a_later_piece_names_its_line_and_a_header_alone_is_refused(tmp_path, specs) -> None:
    from records.raw_records import csv_chunks, read_csv_chunk

    rows = [["user", "note", "history", "clicked"]] + [[f"u{i}", "x\ny" if i % 3 == 0 else "z", str(i), "1"] for i in range(300)]
    rows[251][2] = "seven"  # u250's row (one line); every third row's note before it spans two
    path = _csv_file(tmp_path, rows)
    line = open(path, "rb").read().split(b"u250,")[0].count(b"\n") + 1
    with pytest.raises(RawDataError, match=rf"big\.csv:{line}: field 'history': 'seven' is not an integer"):
        for p in list(csv_chunks(path, chunk_bytes=256))[1:]:
            list(read_csv_chunk(p, specs, "|"))
    for name, text in (("header.csv", "user,clicked\n"), ("header_blank.csv", "user,clicked\n\n  \n"), ("empty.csv", "")):
        (tmp_path / name).write_text(text)
        with pytest.raises(RawDataError, match=rf"{name.replace('.', '[.]')}: no records"):
            list(csv_chunks(str(tmp_path / name), chunk_bytes=100))
