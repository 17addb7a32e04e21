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
import functools
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import orjson
import tensorflow as tf

from embedconfig.config import BadRecordPolicy, DataFormat, PipelineConfig, PreprocessingConfig, Section


class RawDataError(ValueError):
    """A raw record cannot be read; the message names where (file:line) and which field."""


class ColumnSpec(Section):
    """How one declared raw column is typed."""

    name: str
    dtype: str  # int | float | string
    is_list: bool


def column_specs(config: PipelineConfig | PreprocessingConfig) -> dict[str, ColumnSpec]:
    """The declared columns of a config: its features and its label."""
    specs = {f.name: ColumnSpec(name=f.name, dtype=f.dtype, is_list=f.kind == "sequence") for f in config.features}
    specs[config.label.name] = ColumnSpec(name=config.label.name, dtype=config.label.dtype, is_list=False)
    return specs


class SpanWindow(Section):
    """A compiled pipeline's window of spans (docs/KUBEFLOW.md, "Spans"): ExampleGen reads the
    ``spans`` newest spans up to the one TFX's driver resolved, train and validation from each, eval
    from the newest only. Locally a resolver reads the window from ML Metadata instead."""

    spans: int
    patterns: dict[str, str]
    """Split -> file pattern with the span placeholder, as before the driver fills in the newest span."""


class ReaderSettings(Section):
    """What ExampleGen needs to read raw files, and nothing more: its custom_config carries this
    (embedconfig.config.component_config), so a change of model or training settings keeps
    ExampleGen's output cached."""

    format: DataFormat
    list_delimiter: str
    on_bad_record: BadRecordPolicy
    max_bad_fraction: float
    columns: tuple[ColumnSpec, ...]
    window: SpanWindow | None = None

    @staticmethod
    def of(config: PipelineConfig) -> ReaderSettings:
        """The reader settings of a validated config."""
        data = config.data
        return ReaderSettings(format=data.format, list_delimiter=data.list_delimiter, on_bad_record=data.on_bad_record,
                              max_bad_fraction=data.max_bad_fraction, columns=tuple(column_specs(config).values()))

    @property
    def specs(self) -> dict[str, ColumnSpec]:
        """Column name -> spec."""
        return {c.name: c for c in self.columns}


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _typed(value: Any, dtype: str, where: str, field: str, text_cells: bool = False) -> Any:
    """``value`` as ``dtype``; strings are parsed as numbers only where every cell is text (CSV):
    JSON has numbers, so a quoted ``"17"`` for an int field is an error there."""
    if dtype == "int":
        if isinstance(value, bool):
            raise RawDataError(f"{where}: field '{field}': {value!r} is a boolean, expected an integer")
        number = None
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and text_cells:
            try:
                number = int(value.strip())
            except ValueError:
                pass
        elif isinstance(value, str):
            raise RawDataError(f"{where}: field '{field}': {value!r} is a string, expected an integer (JSON numbers are not quoted)")
        if number is None:
            raise RawDataError(f"{where}: field '{field}': {value!r} is not an integer")
        if not INT64_MIN <= number <= INT64_MAX:
            raise RawDataError(f"{where}: field '{field}': {value!r} does not fit in a 64-bit integer")
        return number
    if dtype == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and not text_cells:
            raise RawDataError(f"{where}: field '{field}': {value!r} is a string, expected a number (JSON numbers are not quoted)")
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise RawDataError(f"{where}: field '{field}': {value!r} is not a number")
    if isinstance(value, (dict, list)):
        raise RawDataError(f"{where}: field '{field}': {value!r} is not a single value")
    return str(value)


def infer_dtype(values: Sequence[Any]) -> str:
    """The dtype of JSON values with none declared: all integers -> int, all numbers -> float, else string."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    return "string"


def fill_feature(feature: tf.train.Feature, values: list, dtype: str, where: str, field: str, text_cells: bool = False) -> None:
    """Write ``values`` into ``feature`` as ``dtype`` (the one place raw and REST values become
    features). The common case (values already of the type) is checked in one pass and copied in
    one call; anything else goes value by value through ``_typed``, which names the bad one. Text
    is written as UTF-8, bytes as they are. An empty list still sets the feature's kind.
    ``text_cells`` (CSV): numbers arrive as text and are converted in one pass first; only when one
    does not parse does every value go through ``_typed``, which names it. (``int``/``float`` strip
    whitespace as ``_typed`` does, so the same cells pass. Per value, ``_typed`` took a quarter of
    CSV conversion's time: cProfile, 20K synthetic rows.)"""
    if text_cells and dtype in ("int", "float") and all(type(v) is str for v in values):
        try:
            values = [int(v) for v in values] if dtype == "int" else [float(v) for v in values]
        except ValueError:
            pass
    if dtype == "int":
        target = feature.int64_list
        fast = all(type(v) is int for v in values) and (not values or (INT64_MIN <= min(values) and max(values) <= INT64_MAX))
    elif dtype == "float":
        target = feature.float_list
        fast = all(type(v) is float or type(v) is int for v in values)
    else:
        target = feature.bytes_list
        fast = all(type(v) is str or type(v) is bytes for v in values)
        if fast:
            values = [v.encode("utf-8") if type(v) is str else v for v in values]
    target.SetInParent()
    if fast:
        target.value.extend(values)
    else:
        typed = [_typed(v, dtype, where, field, text_cells) for v in values]
        target.value.extend([v.encode("utf-8") for v in typed] if dtype == "string" else typed)


def record_to_example(
    record: Mapping[str, Any],
    specs: Mapping[str, ColumnSpec],
    where: str,
    list_delimiter: str | None = None,
) -> tf.train.Example:
    """Convert one raw record. ``list_delimiter`` splits string cells of list columns (CSV)."""
    if not isinstance(record, Mapping):
        raise RawDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    example = tf.train.Example()
    features = example.features.feature
    text_cells = list_delimiter is not None  # CSV: every cell is text
    for key, value in record.items():
        if value is None:
            continue
        spec = specs.get(key)
        if spec is None:  # undeclared: keep it so validation can see it
            values = value if isinstance(value, list) else [value]
            fill_feature(features[key], values, infer_dtype(values), where, key, text_cells)
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
        fill_feature(features[key], values, spec.dtype, where, key, text_cells)
    return example


def _decoded(line: str | bytes, where: str) -> str:
    if isinstance(line, str):
        return line
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RawDataError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start} of the line)") from e


Rejected = Callable[[str, str], None]  # (where: "file:line", reason): a bad record skipped


def _reject_or_raise(pairs: Iterable[tuple[str, Callable[[], tf.train.Example | None]]],
                     rejected: Rejected | None) -> Iterator[tf.train.Example]:
    """Run each (where, convert); a RawDataError raises, or with ``rejected`` is reported and skipped."""
    for where, convert in pairs:
        try:
            example = convert()
        except RawDataError as e:
            if rejected is None:
                raise
            rejected(where, str(e))
            continue
        if example is not None:
            yield example


def _jsonl_example(raw_line: str | bytes, where: str, specs: Mapping[str, ColumnSpec]) -> tf.train.Example | None:
    try:
        record = orjson.loads(raw_line)  # the fast path (2.2x json's speed, measured): valid UTF-8 JSON
    except orjson.JSONDecodeError:
        return _jsonl_example_by_json(raw_line, where, specs)  # blank, not UTF-8, or what only json takes (NaN)
    try:
        return record_to_example(record, specs, where)
    except RawDataError:
        # orjson reads an integer past 64 bits as a float; the standard library's reading names the
        # value as it was written
        return _jsonl_example_by_json(raw_line, where, specs)


def _jsonl_example_by_json(raw_line: str | bytes, where: str, specs: Mapping[str, ColumnSpec]) -> tf.train.Example | None:
    line = _decoded(raw_line, where)
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise RawDataError(f"{where}: not valid JSON ({e.msg} at column {e.colno}): {line[:80]!r}") from e
    return record_to_example(record, specs, where)


def iter_jsonl(text_lines: Iterable[str | bytes], path: str, specs: Mapping[str, ColumnSpec],
               rejected: Rejected | None = None, first_line: int = 1) -> Iterator[tf.train.Example]:
    """Examples from JSON Lines (text or UTF-8 bytes); blank lines are skipped, anything else must
    parse. A bad record raises RawDataError, or with ``rejected`` is reported there and skipped.
    ``first_line``: the line number of the first of ``text_lines`` in ``path`` (a chunk of it)."""
    pairs = ((f"{path}:{n}", functools.partial(_jsonl_example, line, f"{path}:{n}", specs))
             for n, line in enumerate(text_lines, start=first_line))
    yield from _reject_or_raise(pairs, rejected)


def _csv_example(row: dict, header: Sequence[str], where: str, specs: Mapping[str, ColumnSpec], list_delimiter: str) -> tf.train.Example:
    if None in row:
        raise RawDataError(f"{where}: {len(header) + len(row[None])} cells but the header has {len(header)}")
    if any(v is None for v in row.values()):
        raise RawDataError(f"{where}: fewer cells than the header's {len(header)}")
    return record_to_example(row, specs, where, list_delimiter=list_delimiter)


def iter_csv(text: str, path: str, specs: Mapping[str, ColumnSpec], list_delimiter: str,
             rejected: Rejected | None = None, header: Sequence[str] | None = None,
             first_line: int = 1) -> Iterator[tf.train.Example]:
    """Examples from CSV; list cells are split on ``list_delimiter``. The header is the text's
    first row, or ``header`` for a piece of a file (whose first line is line ``first_line`` of
    ``path``). A bad row raises RawDataError, or with ``rejected`` is reported there and skipped."""
    reader = csv.DictReader(io.StringIO(text), fieldnames=header)
    if not reader.fieldnames:
        return
    fields = reader.fieldnames

    def where() -> str:  # the row's last physical line (a quoted cell may hold newlines)
        return f"{path}:{first_line - 1 + reader.line_num}"

    pairs = ((where(), functools.partial(_csv_example, row, fields, where(), specs, list_delimiter)) for row in reader)
    yield from _reject_or_raise(pairs, rejected)


@dataclass(frozen=True)
class FileChunk:
    """Bytes ``start`` to ``end`` of ``path``, cut at line ends; its first line is line ``first_line``.
    ``header``: a CSV file's column names, for every piece but the first (which starts with them)."""

    path: str
    start: int
    end: int
    first_line: int
    header: tuple[str, ...] | None = None


# A worker's share of one large JSON Lines file: 300K synthetic rows are 61 MB, so 4 pieces.
PIECE_BYTES = 16 * 2**20


def _no_records(path: str) -> RawDataError:
    """A file without a single record: refused by the first component that reads it, naming it
    (it would otherwise flow through every component and fail in the Trainer with "Empty logs")."""
    return RawDataError(f"{path}: no records (the file is empty or holds only blank lines or a header)")


def jsonl_chunks(path: str, chunk_bytes: int | None = None) -> Iterator[FileChunk]:
    """A JSON Lines file in pieces of about ``chunk_bytes`` (default PIECE_BYTES), cut after a
    newline, each knowing its first line's number, so that several workers share one large file
    and errors still name the line (CSV: ``csv_chunks``). A file with no record at all is an error
    naming it."""
    chunk_bytes = chunk_bytes or PIECE_BYTES
    start, first_line, read, lines, content = 0, 1, 0, 0, False
    with tf.io.gfile.GFile(path, "rb") as f:
        while block := f.read(chunk_bytes):
            read += len(block)
            content = content or bool(block.strip())
            last_newline = block.rfind(b"\n")
            if last_newline < 0:  # one line longer than a chunk: it stays whole
                continue
            lines += block.count(b"\n")
            end = read - len(block) + last_newline + 1
            yield FileChunk(path, start, end, first_line)
            start, first_line, lines = end, first_line + lines, 0
    if not content:
        raise _no_records(path)
    if read > start:
        yield FileChunk(path, start, read, first_line)


def _piece_bytes(chunk: FileChunk) -> bytes:
    with tf.io.gfile.GFile(chunk.path, "rb") as f:
        f.seek(chunk.start)
        return f.read(chunk.end - chunk.start)


def read_jsonl_chunk(chunk: FileChunk, specs: Mapping[str, ColumnSpec], rejected: Rejected | None = None) -> Iterator[tf.train.Example]:
    """The examples of one piece of a JSON Lines file (see ``jsonl_chunks``)."""
    lines = _piece_bytes(chunk).split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # after the last newline
    yield from iter_jsonl(lines, chunk.path, specs, rejected, first_line=chunk.first_line)


def _last_record_end(buffer: bytes) -> int | None:
    """Offset just after the last newline of ``buffer`` that ends a CSV record (None: none does).
    A newline ends a record when an even number of quote characters come before it (RFC 4180
    doubles a quote inside a quoted cell), so a newline inside a quoted cell never does.
    ``buffer`` starts at a record boundary. One pass over the buffer."""
    newline = buffer.rfind(b"\n")
    quotes = buffer.count(b'"', 0, max(newline, 0))
    while newline >= 0:
        if quotes % 2 == 0:
            return newline + 1
        previous = buffer.rfind(b"\n", 0, newline)
        quotes -= buffer.count(b'"', previous + 1, newline)
        newline = previous
    return None


def _first_record_end(buffer: bytes) -> int | None:
    """Offset just after the newline that ends ``buffer``'s first CSV record (None: not in it)."""
    quotes, position = 0, 0
    while (newline := buffer.find(b"\n", position)) >= 0:
        quotes += buffer.count(b'"', position, newline)
        if quotes % 2 == 0:
            return newline + 1
        position = newline + 1
    return None


def csv_chunks(path: str, chunk_bytes: int | None = None) -> Iterator[FileChunk]:
    """A CSV file in pieces of about ``chunk_bytes`` (default PIECE_BYTES), cut only where a
    record ends (never inside a quoted cell that holds a newline), each knowing its first line's
    number; every piece after the first carries the header's column names. A file without a row
    after its header is an error naming it."""
    chunk_bytes = chunk_bytes or PIECE_BYTES
    header: tuple[str, ...] | None = None
    start, first_line, rows = 0, 1, False
    buffer = b""  # read but not yet in a piece; starts at a record boundary (offset ``start``)
    with tf.io.gfile.GFile(path, "rb") as f:
        while block := f.read(chunk_bytes):
            buffer += block
            if header is None:
                header_end = _first_record_end(buffer)
                if header_end is None:
                    continue  # the header goes on past this block
                header = _csv_header(buffer[:header_end], path)
                rows = bool(buffer[header_end:].strip())
            else:
                rows = rows or bool(block.strip())
            end = _last_record_end(buffer)
            if end is None or end < chunk_bytes // 2:  # a record longer than half a piece: read on
                continue
            yield FileChunk(path, start, start + end, first_line, header if start else None)
            first_line += buffer.count(b"\n", 0, end)
            start, buffer = start + end, buffer[end:]
    if header is None and buffer.strip():  # a header with no newline after it
        header = _csv_header(buffer, path)
    if header is None or not rows:
        raise _no_records(path)
    if buffer:
        yield FileChunk(path, start, start + len(buffer), first_line, header if start else None)


def _csv_header(data: bytes, path: str) -> tuple[str, ...]:
    try:
        return tuple(next(csv.reader(io.StringIO(data.decode("utf-8")))))
    except (UnicodeDecodeError, StopIteration) as e:
        raise RawDataError(f"{path}:1: no readable CSV header ({e})") from e


def read_csv_chunk(chunk: FileChunk, specs: Mapping[str, ColumnSpec], list_delimiter: str,
                   rejected: Rejected | None = None) -> Iterator[tf.train.Example]:
    """The examples of one piece of a CSV file (see ``csv_chunks``)."""
    data = _piece_bytes(chunk)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_no = chunk.first_line + data.count(b"\n", 0, e.start)
        raise RawDataError(f"{chunk.path}:{line_no}: not UTF-8 text ({e.reason})") from e
    yield from iter_csv(text, chunk.path, specs, list_delimiter, rejected, header=chunk.header, first_line=chunk.first_line)


def file_pieces(path: str, fmt: str) -> Iterator[FileChunk]:
    """A raw file (``fmt`` is jsonl or csv) in the pieces several workers share."""
    if fmt == "jsonl":
        return jsonl_chunks(path)
    if fmt == "csv":
        return csv_chunks(path)
    raise ValueError(f"unsupported raw format {fmt!r}")


def read_piece(piece: FileChunk, fmt: str, specs: Mapping[str, ColumnSpec], list_delimiter: str,
               rejected: Rejected | None = None) -> Iterator[tf.train.Example]:
    """The examples of one piece of a raw file (see ``file_pieces``)."""
    if fmt == "jsonl":
        return read_jsonl_chunk(piece, specs, rejected)
    return read_csv_chunk(piece, specs, list_delimiter, rejected)


def read_file_examples(path: str, fmt: str, specs: Mapping[str, ColumnSpec], list_delimiter: str,
                       rejected: Rejected | None = None) -> Iterator[tf.train.Example]:
    """All examples of one raw file (``fmt`` is jsonl or csv), piece by piece as ExampleGen's
    workers read it; any file system TF can open. ``rejected``: skip bad records, reporting each
    there (else the first one raises). A file without a single record is an error naming it."""
    for piece in file_pieces(path, fmt):
        yield from read_piece(piece, fmt, specs, list_delimiter, rejected)
