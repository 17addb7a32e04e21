"""Turn raw records (a JSON object, a CSV row) into tf.Examples, with errors that name the row.

Rules, the same for every format:
- a declared feature becomes an ``int64_list`` or ``bytes_list`` with the declared dtype;
  ``sequence`` features take a list (or, in CSV, a cell split on the list delimiter), ``id``
  features take one value (a list is kept as it is, so the schema gate can report it);
- ``null`` or an absent key leaves the feature out (the schema gate reports missing features);
- a value that cannot have the declared dtype is an error naming the file, line and field;
- undeclared keys are kept with an inferred type, so ExampleValidator reports them as new columns
  instead of the data being dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import tensorflow as tf


class RawDataError(ValueError):
    """A raw record cannot be read; the message names where (file:line) and which field."""


@dataclass(frozen=True)
class ColumnSpec:
    """How one declared raw column is typed."""

    name: str
    dtype: str  # int | float | string
    is_list: bool


def column_specs(config: Mapping[str, Any]) -> dict[str, ColumnSpec]:
    """The declared columns (features and label) of a ``PipelineConfig.to_dict()``."""
    specs = {
        f["name"]: ColumnSpec(f["name"], f["dtype"], f["kind"] == "sequence") for f in config["features"]
    }
    label = config["label"]
    specs[label["name"]] = ColumnSpec(label["name"], label["dtype"], False)
    return specs


def _typed(value: Any, dtype: str, where: str, field: str) -> Any:
    if dtype == "int":
        if isinstance(value, bool):
            raise RawDataError(f"{where}: field '{field}': {value!r} is a boolean, expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise RawDataError(f"{where}: field '{field}': {value!r} is not an integer")
    if dtype == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise RawDataError(f"{where}: field '{field}': {value!r} is not a number")
    if isinstance(value, (dict, list)):
        raise RawDataError(f"{where}: field '{field}': {value!r} is not a single value")
    return str(value)


def _as_feature(values: Sequence[Any], dtype: str) -> tf.train.Feature:
    if dtype == "int":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if dtype == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))


def _infer_dtype(values: Sequence[Any]) -> str:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    return "string"


def record_to_example(
    record: Mapping[str, Any],
    specs: Mapping[str, ColumnSpec],
    where: str,
    list_delimiter: str | None = None,
) -> tf.train.Example:
    """Convert one raw record. ``list_delimiter`` splits string cells of list columns (CSV)."""
    if not isinstance(record, Mapping):
        raise RawDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    features: dict[str, tf.train.Feature] = {}
    for key, value in record.items():
        if value is None:
            continue
        spec = specs.get(key)
        if spec is None:  # undeclared: keep it so validation can see it
            values = value if isinstance(value, list) else [value]
            dtype = _infer_dtype(values)
            features[key] = _as_feature([_typed(v, dtype, where, key) for v in values], dtype)
            continue
        if isinstance(value, str) and spec.is_list and list_delimiter is not None:
            value = [] if value == "" else value.split(list_delimiter)
        if isinstance(value, list):
            values = value
        elif spec.is_list:
            raise RawDataError(f"{where}: field '{key}': {value!r} is not a list (sequence feature)")
        else:
            values = [value]
        if list_delimiter is not None and not spec.is_list and value == "":
            continue  # an empty CSV cell is a missing value
        features[key] = _as_feature([_typed(v, spec.dtype, where, key) for v in values], spec.dtype)
    return tf.train.Example(features=tf.train.Features(feature=features))


def iter_jsonl(text_lines: Iterable[str], path: str, specs: Mapping[str, ColumnSpec]) -> Iterator[tf.train.Example]:
    """Examples from JSON Lines; blank lines are skipped, anything else must parse."""
    for line_no, line in enumerate(text_lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise RawDataError(f"{where}: not valid JSON ({e.msg} at column {e.colno}): {line[:80]!r}") from e
        yield record_to_example(record, specs, where)


def iter_csv(text: str, path: str, specs: Mapping[str, ColumnSpec], list_delimiter: str) -> Iterator[tf.train.Example]:
    """Examples from CSV with a header row; list cells are split on ``list_delimiter``."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        return
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if None in row:
            raise RawDataError(f"{where}: {len(reader.fieldnames) + len(row[None])} cells but the header has {len(reader.fieldnames)}")
        if any(v is None for v in row.values()):
            raise RawDataError(f"{where}: fewer cells than the header's {len(reader.fieldnames)}")
        yield record_to_example(row, specs, where, list_delimiter=list_delimiter)


def read_file_examples(path: str, fmt: str, specs: Mapping[str, ColumnSpec], list_delimiter: str) -> Iterator[tf.train.Example]:
    """All examples of one raw file (``fmt`` is jsonl or csv); any file system TF can open."""
    with tf.io.gfile.GFile(path, "r") as f:
        if fmt == "jsonl":
            yield from iter_jsonl(f, path, specs)
        elif fmt == "csv":
            yield from iter_csv(f.read(), path, specs, list_delimiter)
        else:
            raise ValueError(f"unsupported raw format {fmt!r}")
