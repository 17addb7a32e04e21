"""ExampleGen for raw JSON Lines and CSV-with-list-cells files; TFRecord goes to ImportExampleGen.

The executor reads the matched files in a Beam job and writes real ``int64_list`` /
``bytes_list`` features, which CsvExampleGen cannot. Files spread over workers, and a large file
is cut into pieces that workers share: JSON Lines at line ends, CSV where a record ends (never in
a quoted cell holding a newline; each CSV piece carries the header's names). Each piece knows
its first line's number, so errors still name file and line.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from typing import Any, Iterator, Mapping

import apache_beam as beam
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx.components import FileBasedExampleGen, ImportExampleGen
from tfx.components.example_gen import input_processor, write_split
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor, _PartitionFn
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from embedconfig.config import (
    EVAL,
    SPLITS,
    ConfigError,
    DataConfig,
    PipelineConfig,
    component_config,
    from_component_config,
    replace,
)
from records.raw_records import (
    FileChunk,
    RawDataError,
    ReaderSettings,
    Rejected,
    SpanWindow,
    file_pieces,
    read_piece,
)

_REJECTS = "rejects"
SPAN = example_gen_utils.SPAN_PROPERTY_NAME  # the newest span, resolved by TFX's driver
WINDOW_SPANS = "window_spans"  # on a compiled window's Examples: the spans read, oldest first


def _count_lines(path: str) -> int:
    with tf.io.gfile.GFile(path) as f:
        return sum(1 for line in f if line.strip())


def reader_custom_config(reader: ReaderSettings) -> example_gen_pb2.CustomConfig:
    """Pack the reader settings (format, delimiter, bad-record policy, column types, a compiled
    window) into ExampleGen's CustomConfig."""
    settings = struct_pb2.Struct()  # TFX's ExampleGen takes a proto here: the same dict, in a Struct
    settings.update(component_config(reader))
    custom = example_gen_pb2.CustomConfig()
    custom.custom_config.Pack(settings)
    return custom


def _reader_settings(exec_properties: Mapping[str, Any]) -> ReaderSettings:
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    custom = example_gen_pb2.CustomConfig()
    if isinstance(raw, str):
        json_format.Parse(raw, custom)
    elif raw is not None:
        custom.CopyFrom(raw)
    settings = struct_pb2.Struct()
    if not custom.custom_config.Unpack(settings):
        raise ValueError("RawExampleGen needs custom_config from components.example_gen.reader_custom_config()")
    return from_component_config(json_format.MessageToDict(settings), ReaderSettings)


def _examples(piece: FileChunk, settings: ReaderSettings, rejected: Rejected | None = None) -> Iterator[bytes]:
    """Serialized examples, deterministically: TFX's hash split hashes these very bytes, so the
    splits are the ones TFX's own ExampleGen would make of the same examples."""
    for example in read_piece(piece, settings.format, settings.specs, settings.list_delimiter, rejected):
        yield example.SerializeToString(deterministic=True)


def _reject(where: str, reason: str) -> dict[str, Any]:
    file, _, line = where.rpartition(":")
    return {"file": file, "line": int(line), "reason": reason}


def shard_name(file_index: int, piece: FileChunk) -> str:
    """The TFRecord file a piece of the ``file_index``-th input file (in name order) writes to, in
    each split: the same name when Beam retries the piece, and names that sort in input order.

    Why the order: TFXIO lists a split's files in name order and reads them one after another, so
    the Trainer meets the rows in the order the user wrote them, on any file system. The order
    matters: the 10,000-row shuffle buffer mixes rows only locally, and on MovieLens (rows sorted
    by user) the shipped config's eval AUC moved with the pieces' order; input order scored best of
    the orders measured (bench/RESULTS.md, "The order the Trainer meets the rows")."""
    return f"data_tfrecord-{file_index:05d}-{piece.start:015d}.gz"


def span_shard_prefix(span: int) -> str:
    """The prefix of a window's shards from ``span`` (SpanWindow): they sort oldest span first, and
    the drift gate finds each span's rows by it."""
    return f"span-{span:08d}-"


class _WritePieces(beam.DoFn):
    """Convert a piece and write its examples straight into gzip TFRecord files of its splits.

    TFX's own path (Partition, Reshuffle, WriteToTFRecord) moves every example through a shuffle;
    on DirectRunner that shuffle, not the conversion, bounded ExampleGen (bench/RESULTS.md,
    "ExampleGen"). Its Reshuffle keeps the input order there (one random key per element, grouped in
    insertion order), and so does this: examples are written as they are read, in input order.
    Yields the number of examples written; with ``skip``, each bad record as a ``rejects`` output.
    """

    def __init__(self, settings: ReaderSettings, split_uris: list[str], buckets: list[int] | None,
                 split_config: example_gen_pb2.SplitConfig, prefix: str = "", dropped_split: int | None = None) -> None:
        self.settings, self.split_uris, self.buckets, self.split_config = settings, split_uris, buckets, split_config
        self.prefix, self.dropped_split = prefix, dropped_split  # a window's earlier span: its shards' prefix, eval left out

    def process(self, indexed_piece: tuple[int, FileChunk]) -> Iterator[Any]:
        file_index, piece = indexed_piece
        rejects: list[dict[str, Any]] = []
        rejected = (lambda where, reason: rejects.append(_reject(where, reason))) if self.settings.on_bad_record == "skip" else None
        writers: dict[int, tf.io.TFRecordWriter] = {}
        written = 0
        try:
            for data in _examples(piece, self.settings, rejected):
                split = 0 if self.buckets is None else _PartitionFn(data, len(self.buckets), self.buckets, self.split_config)
                if split == self.dropped_split:
                    continue
                if split not in writers:  # a file only for splits the piece has examples of
                    writers[split] = tf.io.TFRecordWriter(
                        os.path.join(self.split_uris[split], self.prefix + shard_name(file_index, piece)), options="GZIP")
                writers[split].write(data)
                written += 1
        finally:
            for writer in writers.values():
                writer.close()
        yield written
        for reject in rejects:
            yield beam.pvalue.TaggedOutput(_REJECTS, json.dumps(reject))


def _pieces_of(pipeline: beam.Pipeline, label: str, files: list[str], settings: ReaderSettings) -> beam.pvalue.PCollection:
    """(index of the file in ``files``, piece) for every piece of every file, spread over the workers."""
    return (pipeline | f"ListFiles[{label}]" >> beam.Create(list(enumerate(files))) | f"SpreadFiles[{label}]" >> beam.Reshuffle()
            | f"CutPieces[{label}]" >> beam.FlatMap(_indexed_pieces, settings.format) | f"SpreadPieces[{label}]" >> beam.Reshuffle())


def _indexed_pieces(indexed_file: tuple[int, str], fmt: str) -> Iterator[tuple[int, FileChunk]]:
    index, path = indexed_file
    return ((index, piece) for piece in file_pieces(path, fmt))


def _input_files(base: str, pattern: str) -> list[str]:
    files = matching_files(base, pattern)
    if not files:
        raise RawDataError(f"no input files match {os.path.join(base, pattern)}")
    return files


class RawExampleGenExecutor(BaseExampleGenExecutor):
    """TFX ExampleGen executor for JSON Lines and CSV files with list-valued fields.

    Writes what TFX's ExampleGen writes (split directories of gzip TFRecords of serialized
    tf.Examples, TFX's hash split, the payload and file format properties), each piece of input
    straight into its own files (see ``_WritePieces``).

    With ``data.on_bad_record: skip`` every rejected record is written, with its file, line and
    reason, to ``<examples artifact>/rejects/rejects-*.jsonl`` (in the pipeline root); the count is
    recorded on the Examples artifact (``rejected_records``, ``rejects_uri``, shown by the run
    summary), and more than ``data.max_bad_fraction`` of the records rejected fails the run.
    """

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]], exec_properties: dict[str, Any]) -> None:  # noqa: N802
        """Read, split and write the examples; then the reject count and the bad-fraction check (skip)."""
        self._log_startup(input_dict, output_dict, exec_properties)
        settings = _reader_settings(exec_properties)
        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        if output_config.split_config.HasField("partition_feature_name"):
            raise ValueError("RawExampleGen splits by hash buckets of the whole example (partition_feature_name is not supported)")
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        names = example_gen_utils.generate_output_split_names(input_config, output_config)
        examples.split_names = artifact_utils.encode_split_names(names)
        uris = [artifact_utils.get_split_uri([examples], name) for name in names]
        for uri in uris:
            tf.io.gfile.makedirs(uri)
        base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        if settings.window is None:
            jobs = _jobs(input_config, output_config, uris)
        else:
            jobs = _window_jobs(settings.window, base, input_config, output_config, uris, names,
                                _newest_span(exec_properties, settings.window, base), examples)
        rejects_dir = os.path.join(examples.uri, "rejects")
        with self._make_beam_pipeline() as pipeline:
            for i, job in enumerate(jobs):
                write = _WritePieces(settings, job.targets, job.buckets, output_config.split_config, job.prefix, job.dropped_split)
                written = (_pieces_of(pipeline, str(i), _input_files(base, job.pattern), settings)
                           | f"Write[{i}]" >> beam.ParDo(write).with_outputs(_REJECTS, main="counts"))
                if settings.on_bad_record == "skip":
                    _ = written[_REJECTS] | f"WriteRejects[{i}]" >> beam.io.WriteToText(
                        os.path.join(rejects_dir, f"rejects-{i}"), file_name_suffix=".jsonl")
                    _ = (written.counts | f"CountAccepted[{i}]" >> beam.CombineGlobally(sum) | f"AsText[{i}]" >> beam.Map(str)
                         | f"WriteCount[{i}]" >> beam.io.WriteToText(os.path.join(rejects_dir, f"accepted-{i}"), file_name_suffix=".txt"))
        for uri in uris:  # a split no example fell into is an empty file, as TFX writes it
            if not tf.io.gfile.glob(os.path.join(uri, "*")):
                with tf.io.TFRecordWriter(os.path.join(uri, "data_tfrecord-empty.gz"), options="GZIP"):
                    pass
        payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if payload:
            examples_utils.set_payload_format(examples, payload)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        if file_format:
            examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))
        if settings.on_bad_record == "skip":
            self._check_rejects(examples, rejects_dir, settings)

    @staticmethod
    def _check_rejects(examples: Any, rejects_dir: str, settings: ReaderSettings) -> None:
        rejected = sum(_count_lines(path) for path in tf.io.gfile.glob(os.path.join(rejects_dir, "rejects-*")))
        accepted = 0
        for path in tf.io.gfile.glob(os.path.join(rejects_dir, "accepted-*")):
            with tf.io.gfile.GFile(path) as f:
                accepted += sum(int(line) for line in f if line.strip())
        examples.set_int_custom_property("rejected_records", rejected)
        examples.set_string_custom_property("rejects_uri", rejects_dir)
        total = accepted + rejected
        if total and rejected / total > settings.max_bad_fraction:
            raise RawDataError(f"{rejected} of {total} records rejected ({rejected / total:.2%}), more than data.max_bad_fraction "
                               f"{settings.max_bad_fraction:.2%}; every one with file, line and reason: {rejects_dir}")

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 -- TFX API
        """Not used: ``Do`` reads, splits and writes in one pass instead of TFX's
        GenerateExamplesByBeam + WriteSplit (abstract in TFX's base class, so defined here)."""
        raise NotImplementedError("RawExampleGenExecutor.Do writes the splits itself")


@dataclasses.dataclass(frozen=True)
class _Job:
    """Files of one input pattern, written into ``targets`` (one split, or the hash split's)."""

    pattern: str
    targets: list[str]
    buckets: list[int] | None
    prefix: str = ""
    dropped_split: int | None = None


def _jobs(input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output, uris: list[str]) -> list[_Job]:
    if output_config.split_config.splits:  # one input split, cut by hash buckets
        buckets = list(itertools.accumulate(s.hash_buckets for s in output_config.split_config.splits))
        return [_Job(input_config.splits[0].pattern, uris, buckets)]
    return [_Job(split.pattern, [uri], None) for split, uri in zip(input_config.splits, uris, strict=True)]  # data.split.files


def _window_jobs(window: SpanWindow, base: str, input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                 uris: list[str], names: list[str], newest: int, examples: Any) -> list[_Job]:
    """A compiled pipeline's window: the newest span TFX's driver resolved, and the ``window.spans - 1``
    spans before it that have files, oldest first; eval only from the newest (where the Evaluator and
    the canary judge, as locally). Records the spans on the Examples artifact (``window_spans``)."""
    processor = _span_processor(window, base)
    spans = [s for s in range(max(0, newest - window.spans + 1), newest)
             if all(matching_files(base, processor.get_pattern_for_span_version(p, s, None)) for p in window.patterns.values())]
    eval_index = names.index(EVAL)
    jobs = []
    for span in [*spans, newest]:
        at_span = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(
            name=split.name, pattern=processor.get_pattern_for_span_version(window.patterns[split.name], span, None))
            for split in input_config.splits])
        for job in _jobs(at_span, output_config, uris):
            if span != newest and job.buckets is None and job.targets == [uris[eval_index]]:
                continue  # data.split.files: an earlier span's eval file is not read at all
            dropped = eval_index if span != newest and job.buckets is not None else None
            jobs.append(dataclasses.replace(job, prefix=span_shard_prefix(span), dropped_split=dropped))
    examples.set_string_custom_property(WINDOW_SPANS, ",".join(str(s) for s in [*spans, newest]))
    logging.info("ExampleGen: the window's spans %s (eval from span %d only)", [*spans, newest], newest)
    return jobs


def _span_processor(window: SpanWindow, base: str) -> input_processor.FileBasedInputProcessor:
    """TFX's span resolution (the driver's) over the window's patterns, placeholders and all."""
    splits = [example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in window.patterns.items()]
    return input_processor.FileBasedInputProcessor(base, splits, None)


def _newest_span(exec_properties: Mapping[str, Any], window: SpanWindow, base: str) -> int:
    """The span TFX's ExampleGen driver resolved (the container's preCacheCheck); where a backend did
    not run the driver, resolved here by the same code (TFX's FileBasedInputProcessor): the newest."""
    if exec_properties.get(SPAN) is not None:
        return int(exec_properties[SPAN])
    span, _ = _span_processor(window, base).resolve_span_and_version()
    logging.warning("ExampleGen: no span from TFX's driver (did the backend run the preCacheCheck?); the newest on disk is %d", span)
    return span


def window_spans_of(examples: Any) -> list[int]:
    """The spans a compiled pipeline's ExampleGen read into ``examples`` (SpanWindow), oldest first; [] if not a window."""
    if not examples.has_custom_property(WINDOW_SPANS):
        return []
    return [int(s) for s in examples.get_string_custom_property(WINDOW_SPANS).split(",")]


# --------------------------------------------------------------------------- inputs and splits


_PATTERN_CHARACTERS = "*?[{"  # a glob, or one of TFX's span placeholders ({SPAN}, {YYYY}, ...)
_PLACEHOLDER = re.compile(r"\{[A-Z]+(:[^}]*)?\}")


def split_input_location(path: str) -> tuple[str, str]:
    """Split a data path (file, glob, directory, or any of these naming spans) into ExampleGen's
    input_base and pattern: the pattern starts at the first part that is a glob or holds a span
    placeholder, which TFX's driver resolves in the pattern, never in input_base."""
    if any(ch in path for ch in _PATTERN_CHARACTERS):
        head, parts = path.rstrip("/"), []
        while any(ch in head for ch in _PATTERN_CHARACTERS):
            head, tail = os.path.split(head)
            parts.insert(0, tail)
        pattern = os.path.join(*parts)
        matched = tf.io.gfile.glob(os.path.join(head, _PLACEHOLDER.sub("*", pattern))) if not path.endswith("/") else []
        if path.endswith("/") or (matched and all(tf.io.gfile.isdir(m) for m in matched)):
            pattern = os.path.join(pattern, "*")  # a directory per span: every file in it
        return head, pattern
    if path.endswith("/") or tf.io.gfile.isdir(path):
        return path.rstrip("/") or "/", "*"
    return os.path.dirname(path) or ".", os.path.basename(path)


def input_patterns(data: DataConfig) -> tuple[str, dict[str, str]]:
    """input_base and split name -> file pattern for the config's data section.

    With ``data.split.files`` the keys are train, validation and eval and ``data.path`` is the
    directory that holds them (it need not exist where the pipeline is compiled); otherwise one
    ``single_split`` pattern that ExampleGen splits by hash buckets.
    """
    if data.split.files:
        if data.has_spans:  # data/span-{SPAN}/ + train*: base data, pattern span-{SPAN}/train*
            base, span_dir = split_input_location(data.path.rstrip("/"))
            return base, {name: os.path.join(span_dir, data.split.files[name]) for name in SPLITS}
        return data.path.rstrip("/") or "/", {name: data.split.files[name] for name in SPLITS}
    base, pattern = split_input_location(data.path)
    return base, {"single_split": pattern}


def matching_files(base: str, pattern: str) -> list[str]:
    """The files under ``base`` that match ``pattern``, sorted; a span placeholder matches any span."""
    return sorted(tf.io.gfile.glob(os.path.join(base, _PLACEHOLDER.sub("*", pattern))))


def example_gen_io(data: DataConfig, check_files: bool = True) -> tuple[str, example_gen_pb2.Input, example_gen_pb2.Output | None]:
    """input_base, input_config and output_config for the config's data section.

    ``check_files``: refuse a missing directory or a pattern that matches nothing, local or in a
    bucket (off when compiling: the pods read the data, not this machine).
    """
    base, patterns = input_patterns(data)
    if check_files and not tf.io.gfile.isdir(base):
        if any(ch in data.path for ch in _PATTERN_CHARACTERS):  # a glob or spans: name the directory they are under
            raise FileNotFoundError(f"data.path: {data.path}: the directory {base} does not exist (or is not a directory)")
        raise FileNotFoundError(f"data.path: {data.path} does not exist")
    for name, pattern in patterns.items():
        field = f"data.split.files.{name}" if data.split.files else "data.path"
        if check_files and not matching_files(base, pattern):
            raise FileNotFoundError(f"{field}: no files match {os.path.join(base, pattern)}")
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in patterns.items()])
    if data.split.files:
        return base, input_config, None
    # TFX's hash split: bucket = hash(serialized example) % sum of the shares, cut in SPLITS order
    output = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=data.split.hash_buckets[name]) for name in SPLITS]
        )
    )
    return base, input_config, output


def make_example_gen(config: PipelineConfig, check_files: bool = True, span: int | None = None, window: bool = False) -> Any:
    """The ExampleGen component for ``config``; with spans in data.path it ingests the newest, or
    ``span`` (a static range of one span: what a backfill of a span not yet ingested runs).
    ``window`` (a compiled pipeline with spans): it reads the whole data.window (SpanWindow)."""
    base, input_config, output_config = example_gen_io(config.data, check_files)
    range_config = None
    if window and config.data.window.is_fixed:
        span = config.data.window.end
    if span is not None:
        range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span))
    settings = ReaderSettings.of(config)
    if window:
        if config.data.format == "tfrecord":
            raise ConfigError("data.format", "tfrecord spans compile for Kubeflow only with a window of one span (TFX's ImportExampleGen reads one)")
        w = config.data.window
        settings = replace(settings, window=SpanWindow(spans=w.end - w.start + 1 if w.is_fixed else w.spans,
                                                       patterns={split.name: split.pattern for split in input_config.splits}))
    if config.data.format == "tfrecord":
        return ImportExampleGen(input_base=base, input_config=input_config, output_config=output_config, range_config=range_config)
    return FileBasedExampleGen(
        input_base=base,
        input_config=input_config,
        output_config=output_config,
        range_config=range_config,
        custom_config=reader_custom_config(settings),
        custom_executor_spec=executor_spec.BeamExecutorSpec(RawExampleGenExecutor),
    )

