"""The ExampleGen executor on CSV with list cells, through a real Beam run of the TFX executor."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import json_format
from tfx.proto import example_gen_pb2

from components.example_gen import example_gen_io, split_input_location
from embedconfig.config import SPLITS, PipelineConfig, parse_config
from tests.helpers.example_gen import run_example_gen


def _csv_config(raw_config: dict, data: Path) -> PipelineConfig:
    raw_config["data"] = {"format": "csv", "path": str(data), "list_delimiter": ";"}
    return parse_config(raw_config)


def test_csv_list_cells_become_lists(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "in.csv"
    rows = ["user,interests,history,target,target_categories,clicked"]
    rows += [f"u{i},a;b,{i};{i + 1},{i},,{i % 2}" for i in range(40)]
    data.write_text("\n".join(rows) + "\n")
    run_example_gen(_csv_config(raw_config, data), tmp_path / "out")
    files = tf.io.gfile.glob(str(tmp_path / "out" / "Split-*" / "*"))
    examples = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    assert len(examples) == 40, "every row arrives, in one of the three splits"
    one = next(e for e in examples if e.features.feature["user"].bytes_list.value == [b"u3"])
    assert list(one.features.feature["history"].int64_list.value) == [3, 4]
    assert list(one.features.feature["interests"].bytes_list.value) == [b"a", b"b"]
    assert list(one.features.feature["target_categories"].bytes_list.value) == []


def test_bad_row_fails_the_component_naming_file_line_and_field(tmp_path: Path, raw_config: dict) -> None:
    data = tmp_path / "in.csv"
    data.write_text("user,history,clicked\nu1,1;2,1\nu2,1;two,0\n")
    with pytest.raises(Exception, match=r"in\.csv:3: field 'history': 'two' is not an integer"):
        run_example_gen(_csv_config(raw_config, data), tmp_path / "out")


def test_input_locations() -> None:
    assert split_input_location("/d/part-*.jsonl") == ("/d", "part-*.jsonl")
    assert split_input_location("/d/x/*/a.csv") == ("/d/x", "*/a.csv")
    assert split_input_location("/d/file.jsonl") == ("/d", "file.jsonl")


def test_tfrecord_input_goes_through_import_example_gen(tmp_path: Path, raw_config: dict) -> None:
    from tfx import v1 as tfx

    from components.example_gen import make_example_gen

    for split in SPLITS:
        (tmp_path / f"{split}.tfrecord").write_bytes(b"")
    files = {"train": "train*", "validation": "validation*", "eval": "eval*"}
    raw_config["data"] = {"format": "tfrecord", "path": str(tmp_path), "split": {"files": files}}
    component = make_example_gen(parse_config(raw_config))
    assert isinstance(component, tfx.components.ImportExampleGen)
    input_config = json_format.Parse(component.exec_properties["input_config"], example_gen_pb2.Input())
    splits = {s.name: s.pattern for s in input_config.splits}
    assert splits == files


def test_split_files_take_data_path_as_their_directory_even_before_it_exists(raw_config: dict, tmp_path: Path) -> None:
    files = {"train": "train*.jsonl", "validation": "validation*.jsonl", "eval": "eval*.jsonl"}
    raw_config["data"] = {"format": "jsonl", "path": str(tmp_path / "not-yet"), "split": {"files": files}}
    data = parse_config(raw_config).data
    base, input_config, _ = example_gen_io(data, check_files=False)  # compiling: the pods read the data
    assert base == str(tmp_path / "not-yet")
    assert [(s.name, s.pattern) for s in input_config.splits] == list(files.items())
    with pytest.raises(FileNotFoundError, match=rf"data.path: {tmp_path / 'not-yet'} does not exist"):
        example_gen_io(data)  # running: it must be there
    (tmp_path / "not-yet").mkdir()
    with pytest.raises(FileNotFoundError, match=r"data.split.files.train: no files match .*train\*.jsonl"):
        example_gen_io(data)


@pytest.mark.parametrize(("path", "said"), [
    ("does/not/exist", "data.path: {root}/does/not/exist does not exist"),  # issue 40: it named does/not
    ("does/not/exist/", "data.path: {root}/does/not/exist/ does not exist"),
    ("missing/*.jsonl", "data.path: {root}/missing/*.jsonl: the directory {root}/missing does not exist"),
])
def test_a_missing_data_path_is_named_as_given(raw_config: dict, tmp_path: Path, path: str, said: str) -> None:
    raw_config["data"]["path"] = f"{tmp_path}/{path}"
    with pytest.raises(FileNotFoundError) as raised:
        example_gen_io(parse_config(raw_config).data)
    assert str(raised.value).startswith(said.format(root=tmp_path)), str(raised.value)


def _jsonl_config(raw_config: dict, data: Path) -> PipelineConfig:
    raw_config["data"] = {"format": "jsonl", "path": str(data)}
    return parse_config(raw_config)


def _read_splits(out: Path) -> dict[str, list[tf.train.Example]]:
    """Each split's examples, its files read in name order (as TFXIO reads them for the Trainer)."""
    splits = {}
    for split in SPLITS:
        files = sorted(tf.io.gfile.glob(str(out / f"Split-{split}" / "*")))
        splits[split] = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    return splits


def test_a_large_jsonl_file_is_read_in_pieces_with_nothing_lost_or_doubled(tmp_path: Path, raw_config: dict, monkeypatch) -> None:
    import json

    from records import raw_records

    monkeypatch.setattr(raw_records, "PIECE_BYTES", 4096)  # ~20 pieces of each file
    data = tmp_path / "big"
    data.mkdir()
    for name, rows in (("b.jsonl", range(1500, 3000)), ("a.jsonl", range(1500))):  # input order: a, then b
        (data / name).write_text("".join(json.dumps({"user": f"u{i}", "history": [i, i + 1], "target": i, "clicked": i % 2}) + "\n"
                                         for i in rows))
    run_example_gen(_jsonl_config(raw_config, data), tmp_path / "out")
    splits = _read_splits(tmp_path / "out")
    order = {split: [int(e.features.feature["user"].bytes_list.value[0].decode()[1:]) for e in s] for split, s in splits.items()}
    assert sorted(i for s in order.values() for i in s) == list(range(3000))
    for split, rows in order.items():  # file names sort in input order, whichever worker wrote which piece
        assert rows == sorted(rows) and len(tf.io.gfile.glob(str(tmp_path / "out" / f"Split-{split}" / "*"))) > 20, split
    shares = {split: len(examples) / 3000 for split, examples in splits.items()}
    assert 0.6 < shares["train"] < 0.8 and 0.05 < shares["validation"] < 0.15 and 0.15 < shares["eval"] < 0.25, \
        f"the config's 7:1:2 hash split, got {shares}"


def test_a_large_csv_file_is_read_in_pieces_with_quoted_newlines_whole(tmp_path: Path, raw_config: dict, monkeypatch) -> None:
    """CSV pieces end only where a record ends: quoted cells that hold newlines arrive whole, once."""
    import csv

    from records import raw_records

    monkeypatch.setattr(raw_records, "PIECE_BYTES", 2048)  # ~60 pieces of one file
    data = tmp_path / "big.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "review", "history", "target", "clicked"])
        writer.writerows([f"u{i}", f"line one\nsaid \"{i}\", twice" if i % 4 == 0 else "short", f"{i};{i + 1}", i, i % 2]
                         for i in range(2000))
    run_example_gen(_csv_config(raw_config, data), tmp_path / "out")
    examples = [e for s in _read_splits(tmp_path / "out").values() for e in s]
    by_user = {e.features.feature["user"].bytes_list.value[0].decode(): e for e in examples}
    assert len(examples) == 2000 and set(by_user) == {f"u{i}" for i in range(2000)}, "nothing lost or doubled"
    assert by_user["u8"].features.feature["review"].bytes_list.value == [b'line one\nsaid "8", twice']
    assert list(by_user["u8"].features.feature["history"].int64_list.value) == [8, 9]


def test_a_bad_record_deep_in_a_large_file_names_its_line(tmp_path: Path, raw_config: dict, monkeypatch) -> None:
    from records import raw_records

    monkeypatch.setattr(raw_records, "PIECE_BYTES", 1024)
    data = tmp_path / "big.jsonl"
    lines = [f'{{"user": "u{i}", "clicked": 1}}' for i in range(2000)]
    lines[1776] = '{"user": "u1776", "target": 1.5, "clicked": 1}'
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=r"big\.jsonl:1777: field 'target': 1.5 is not an integer"):
        run_example_gen(_jsonl_config(raw_config, data), tmp_path / "out")


def test_the_splits_are_those_tfx_import_example_gen_makes_of_the_same_examples(tmp_path: Path, raw_config: dict, monkeypatch) -> None:
    """The yardstick: TFX's own ImportExampleGen, given the same examples as a TFRecord file, puts
    each in the same split (both hash the deterministic serialization with TFX's partition)."""
    import json

    from records import raw_records
    from records.raw_records import column_specs, read_file_examples
    from tests.helpers.example_gen import run_import_example_gen

    monkeypatch.setattr(raw_records, "PIECE_BYTES", 8192)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"user": f"u{i}", "interests": ["a", "b"][: i % 3], "history": list(range(i % 5)),
                                        "target": i, "clicked": i % 2}) + "\n" for i in range(1500)))
    config = _jsonl_config(raw_config, data)
    run_example_gen(config, tmp_path / "ours")
    (tmp_path / "tfrecord").mkdir()
    with tf.io.TFRecordWriter(str(tmp_path / "tfrecord" / "data.tfrecord")) as writer:
        for example in read_file_examples(str(data), "jsonl", column_specs(config), "|"):
            writer.write(example.SerializeToString(deterministic=True))
    run_import_example_gen(config, tmp_path / "tfrecord", tmp_path / "theirs")

    def users(out: Path) -> dict[str, set[str]]:
        return {split: {e.features.feature["user"].bytes_list.value[0].decode() for e in examples}
                for split, examples in _read_splits(out).items()}

    ours = users(tmp_path / "ours")
    assert ours == users(tmp_path / "theirs")
    assert sum(len(ours[split]) for split in SPLITS) == 1500 and all(ours[split] for split in SPLITS)
